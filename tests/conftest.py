"""Shared fixtures. After every test: no profiler left running, no stray threads."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_profiler_left_running() -> Iterator[None]:
    threads_before = {t.ident for t in threading.enumerate()}
    yield
    from throughput.capture.profiler import active_profiler

    leaked = active_profiler()
    if leaked is not None:
        leaked.stop()
        pytest.fail("a Profiler was left running after the test")
    new = [t for t in threading.enumerate() if t.ident not in threads_before and t.is_alive()
           and not t.daemon and t is not threading.current_thread()]
    assert not new, f"threads left running: {[t.name for t in new]}"
