"""Device timing with CUDA event pairs, resolved later by non-blocking queries.

Each timed interval records a start and an end event on the current stream. Nothing here waits for
the device on the hot path: ``poll()`` only resolves pairs whose end event ``query()`` says is done.
``finish()`` makes the single synchronize of the run.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Protocol


class DeviceEvent(Protocol):
    """The part of ``torch.cuda.Event`` we use (tests pass a fake)."""

    def record(self) -> None: ...
    def query(self) -> bool: ...
    def synchronize(self) -> None: ...
    def elapsed_time(self, end_event: "DeviceEvent") -> float: ...  # milliseconds


EventFactory = Callable[[], DeviceEvent]


def cuda_event_factory() -> EventFactory:
    import torch

    def make() -> DeviceEvent:
        return torch.cuda.Event(enable_timing=True)  # type: ignore[return-value]  # torch's stubs: Event is not our DeviceEvent protocol

    return make


class _Pair:
    __slots__ = ("key", "start", "end")

    def __init__(self, key: int, start: DeviceEvent) -> None:
        self.key = key
        self.start = start
        self.end: DeviceEvent | None = None


class DeviceTimer:
    """Times intervals on the device. Keys are caller-chosen ints (the recorder uses span ids)."""

    def __init__(self, event_factory: EventFactory, pool_size: int = 256) -> None:
        self._make = event_factory
        self._open: dict[int, _Pair] = {}
        self._pending: deque[_Pair] = deque()
        self._resolved: dict[int, float] = {}
        self._free: list[DeviceEvent] = [event_factory() for _ in range(pool_size)]
        self.synchronize_calls = 0

    def _event(self) -> DeviceEvent:
        return self._free.pop() if self._free else self._make()

    def start(self, key: int) -> None:
        ev = self._event()
        ev.record()
        self._open[key] = _Pair(key, ev)

    def stop(self, key: int) -> None:
        pair = self._open.pop(key, None)
        if pair is None:
            return
        ev = self._event()
        ev.record()
        pair.end = ev
        self._pending.append(pair)

    def poll(self) -> int:
        """Resolve finished pairs in order without blocking. Returns how many were resolved."""
        n = 0
        while self._pending:
            pair = self._pending[0]
            assert pair.end is not None
            # Non-blocking: query() returns False while the device has not reached the event.
            if not pair.end.query():
                break
            self._resolve(self._pending.popleft())
            n += 1
        return n

    def finish(self) -> None:
        """Resolve everything. Sync point: one synchronize on the last event, once per run."""
        if self._pending:
            last = self._pending[-1].end
            assert last is not None
            last.synchronize()
            self.synchronize_calls += 1
        while self._pending:
            self._resolve(self._pending.popleft())

    def take(self, key: int) -> float | None:
        """The resolved device seconds of an interval, once (None if not resolved yet)."""
        return self._resolved.pop(key, None)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _resolve(self, pair: _Pair) -> None:
        assert pair.end is not None
        self._resolved[pair.key] = pair.start.elapsed_time(pair.end) / 1e3
        self._free.append(pair.start)
        self._free.append(pair.end)
