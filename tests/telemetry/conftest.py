"""Every telemetry test must leave no sampler thread and no child process behind."""

from __future__ import annotations

import os
import threading
import time
from typing import Iterator

import pytest

from throughput.telemetry.host import child_pids


def _leftovers(threads_before: set[int], children_before: set[int]) -> tuple[list[str], list[int]]:
    threads = [t.name for t in threading.enumerate() if t.ident not in threads_before and t.is_alive()]
    children = [c for c in child_pids(os.getpid()) if c not in children_before]
    return threads, children


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    threads_before = {t.ident for t in threading.enumerate() if t.ident is not None}
    children_before = set(child_pids(os.getpid()))
    yield
    deadline = time.monotonic() + 10.0   # DataLoader workers exit asynchronously after their iterator dies
    threads, children = _leftovers(threads_before, children_before)
    while (threads or children) and time.monotonic() < deadline:
        time.sleep(0.05)
        threads, children = _leftovers(threads_before, children_before)
    assert not [t for t in threads if t.startswith("throughput-")], f"sampler threads left running: {threads}"
    assert not threads, f"threads left running: {threads}"
    assert not children, f"child processes left behind: {children}"
