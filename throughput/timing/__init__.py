"""Clocks and device timers: the only code that reads time."""

from throughput.timing.clock import Clock, FakeClock, PerfCounterClock
from throughput.timing.cuda import DeviceEvent, DeviceTimer, EventFactory, cuda_event_factory

__all__ = ["Clock", "DeviceEvent", "DeviceTimer", "EventFactory", "FakeClock", "PerfCounterClock",
           "cuda_event_factory"]
