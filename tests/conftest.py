"""Shared fixtures. After every test: no profiler left running, no stray threads, and no zero-code
hook or patch left installed on torch. Hypothesis runs without deadlines or the too-slow health check
(a loaded machine is not a failing property) and writes no example database into the checkout."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Iterator

import pytest
from hypothesis import HealthCheck, settings

# Two pytest workers share the machine's cores: every torch process of the suite (the workers and each
# subprocess they start, which inherit this environment) runs one intra-op thread, so that OpenMP pools
# do not spin against each other. Set before anything imports torch; a caller's own value is kept.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# The Ctrl-C tests play a user at a terminal, where Ctrl-C interrupts. A suite started as a background job
# of a non-interactive shell (`make test-under-load &`) inherits SIGINT *ignored*, and every process it
# starts would too (an ignored signal survives exec; python then installs no KeyboardInterrupt handler),
# so those tests failed there for a reason that is not the product's. A handler instead of SIG_IGN: the
# processes the tests start get the default disposition at exec, as under a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

settings.register_profile("throughput", deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("throughput")

if TYPE_CHECKING:
    from tests.zygote import Zygote


@pytest.fixture(scope="session")
def zygote() -> Iterator["Zygote"]:
    """One warm forking parent (tests/zygote.py) per test process: real throughput processes and plain
    script runs without paying torch's import each time."""
    from tests.zygote import Zygote

    z = Zygote()
    try:
        yield z
    finally:
        z.close()


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


@pytest.fixture(autouse=True)
def _no_instrumentation_left() -> Iterator[None]:
    yield
    if "torch" not in sys.modules:
        return
    from throughput.capture.hooks import active_instrumentation
    from throughput.capture.patching import leftover_patches

    inst = active_instrumentation()
    if inst is not None:
        inst.remove()
        pytest.fail("a test left the zero-code instrumentation installed")
    assert leftover_patches() == [], f"throughput patches left installed on torch: {leftover_patches()}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (or set THROUGHPUT_SLOW=1)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Files holding a slow test run first (a stable sort: each file's tests stay together and in order).
    # With `--dist loadfile` the workers take files from this order, so the long files start at once and
    # the many short ones fill the end, instead of one worker finishing a long file alone.
    slow_files = {item.nodeid.split("::")[0] for item in items if "slow" in item.keywords}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow_files)
    if config.getoption("--runslow") or os.environ.get("THROUGHPUT_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow or THROUGHPUT_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
