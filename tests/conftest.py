"""Shared fixtures. The autouse check: no test may leave a profiler running or a hook installed."""

from __future__ import annotations

import sys
from typing import Iterator

import pytest


@pytest.fixture(autouse=True)
def no_instrumentation_left() -> Iterator[None]:
    yield
    from throughput.capture.profiler import active_profiler
    from throughput.capture.patching import leftover_patches
    assert active_profiler() is None, "a test left a throughput Profiler running"
    if "torch" in sys.modules:
        from throughput.capture.hooks import active_instrumentation
        assert active_instrumentation() is None, "a test left the zero-code instrumentation installed"
        assert leftover_patches() == [], f"throughput patches left installed: {leftover_patches()}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (or set THROUGHPUT_SLOW=1)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import os
    if config.getoption("--runslow") or os.environ.get("THROUGHPUT_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow or THROUGHPUT_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
