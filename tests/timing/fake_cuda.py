"""A fake CUDA event: a device timeline the test advances, so resolution can be checked without a GPU."""

from __future__ import annotations


class FakeDevice:
    """Work is queued at record time; the device 'completes' up to ``progress_s`` as the test says."""

    def __init__(self) -> None:
        self.clock_s = 0.0          # device timestamp given to the next recorded event
        self.progress_s = 0.0       # everything recorded at or before this is complete
        self.synchronize_calls = 0

    def factory(self) -> "FakeEvent":
        return FakeEvent(self)


class FakeEvent:
    def __init__(self, device: FakeDevice) -> None:
        self._device = device
        self.timestamp_s: float | None = None

    def record(self) -> None:
        self.timestamp_s = self._device.clock_s

    def query(self) -> bool:
        return self.timestamp_s is not None and self.timestamp_s <= self._device.progress_s

    def synchronize(self) -> None:
        self._device.synchronize_calls += 1
        if self.timestamp_s is not None:
            self._device.progress_s = max(self._device.progress_s, self.timestamp_s)

    def elapsed_time(self, end_event: "FakeEvent") -> float:
        if not (self.query() and end_event.query()):
            raise RuntimeError("event not complete (a real CUDA event would raise too)")
        assert self.timestamp_s is not None and end_event.timestamp_s is not None
        return (end_event.timestamp_s - self.timestamp_s) * 1e3
