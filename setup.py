"""The optional C helper only; everything else about the package is in pyproject.toml.

``throughput/capture/_fastphase.c`` is the phase context manager's hot path in C;
``throughput/capture/_bypass.c`` lets module classes called only nested skip the zero-code wrapper;
``throughput/capture/_sigterm.c`` reports a SIGTERM and then dies by it without the script seeing a handler.
``optional=True``: where there is no C compiler the install still succeeds, ``recorder.RecordedPhase``
(Python) does the phase's work and no module class is bypassed. (setuptools' ``[tool.setuptools.ext-modules]`` table would say this in pyproject.toml,
but it is still experimental.)
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("throughput.capture._fastphase", ["throughput/capture/_fastphase.c"], optional=True),
                   Extension("throughput.capture._bypass", ["throughput/capture/_bypass.c"], optional=True),
                   Extension("throughput.capture._sigterm", ["throughput/capture/_sigterm.c"], libraries=["rt"],
                             optional=True)])
