"""GPU telemetry through NVML (the nvidia-ml-py package): utilization, memory, power, SM clock and
clock throttle reasons, per GPU. Without NVML or a GPU the sampler is unavailable and says why."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from throughput.session.records import TelemetrySample

# metric name -> (NVML call on a handle, scale to the unit in the name)
_METRICS: tuple[tuple[str, Callable[[Any, Any], float]], ...] = (
    ("gpu_util_pct", lambda nv, h: float(nv.nvmlDeviceGetUtilizationRates(h).gpu)),
    ("mem_util_pct", lambda nv, h: float(nv.nvmlDeviceGetUtilizationRates(h).memory)),
    ("mem_used_bytes", lambda nv, h: float(nv.nvmlDeviceGetMemoryInfo(h).used)),
    ("power_w", lambda nv, h: nv.nvmlDeviceGetPowerUsage(h) / 1e3),            # NVML reports milliwatts
    ("sm_clock_mhz", lambda nv, h: float(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM))),
    ("throttle_reasons", lambda nv, h: float(_throttle(nv, h))),               # NVML bit mask
)

def _throttle(nv: Any, handle: Any) -> int:
    fn = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or nv.nvmlDeviceGetCurrentClocksThrottleReasons
    return int(fn(handle))


class NvmlSampler:
    """Samples every GPU (or ``indices``) through NVML. Never raises from construction or sampling of
    an unsupported metric: metrics a GPU does not support are skipped."""

    name = "nvml"

    def __init__(self, indices: Sequence[int] | None = None) -> None:
        self.available = False
        self.note = ""
        self._nv: Any = None
        self._handles: list[tuple[str, Any]] = []
        self._unsupported: set[tuple[str, str]] = set()
        try:
            import pynvml  # from the nvidia-ml-py package
            pynvml.nvmlInit()
        except Exception as e:
            self.note = f"GPU telemetry not available: NVML could not start ({type(e).__name__}: {e})"
            return
        self._nv = pynvml
        try:
            count = pynvml.nvmlDeviceGetCount()
            wanted = range(count) if indices is None else [i for i in indices if 0 <= i < count]
            self._handles = [(f"gpu{i}", pynvml.nvmlDeviceGetHandleByIndex(i)) for i in wanted]
        except Exception as e:
            self.note = f"GPU telemetry not available: {type(e).__name__}: {e}"
            self.close()
            return
        if not self._handles:
            self.note = "GPU telemetry not available: NVML sees no GPU"
            self.close()
            return
        self.available = True

    def sample(self, now_s: float) -> list[TelemetrySample]:
        out: list[TelemetrySample] = []
        for source, handle in self._handles:
            for metric, read in _METRICS:
                if (source, metric) in self._unsupported:
                    continue
                try:
                    value = read(self._nv, handle)
                except Exception:  # NVMLError_NotSupported and friends: skip this metric from now on
                    self._unsupported.add((source, metric))
                    continue
                out.append(TelemetrySample(time_s=now_s, source=source, metric=metric, value=value))
        return out

    def close(self) -> None:
        if self._nv is not None:
            nv, self._nv = self._nv, None
            try:
                nv.nvmlShutdown()
            except Exception:
                pass
