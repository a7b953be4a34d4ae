"""Background samplers that run beside the profiled loop: NVML (GPU), host (CPU%, RSS), py-spy.

Everything here is best effort: a sampler that cannot run says so in a note and never raises into
the user's training loop. Threads are joined and child processes reaped when the run stops.
"""

from throughput.telemetry.controller import Sampler, SamplerThread, TelemetryController

__all__ = ["Sampler", "SamplerThread", "TelemetryController"]
