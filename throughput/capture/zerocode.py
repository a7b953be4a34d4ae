"""Profile an unmodified script: a Profiler, the hooks, the runner, and the session they produce."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from throughput.capture.device import hardware_context
from throughput.capture.hooks import Instrumentation
from throughput.capture.overrides import Overrides
from throughput.capture.profiler import DEFAULT_WARMUP_STEPS, Profiler
from throughput.capture.runner import RunResult, Target, check_target, run
from throughput.session.session import Session


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileOptions:
    """How to profile: warm-up steps excluded, an optional step limit, and recipe overrides."""

    warmup_steps: int = DEFAULT_WARMUP_STEPS
    max_steps: int | None = None          # stop cleanly after this many steps (None: run to the end)
    overrides: Overrides = field(default_factory=Overrides)
    pad_id: int | None = None             # token id counted as padding when batches have no mask
    telemetry: Any = None                 # a TelemetryHook (throughput.telemetry.TelemetryController,
                                          # which also records FLOPs per step for MFU)
    progress: bool | None = None          # live status line: None on a terminal only, True always, False never

    def __post_init__(self) -> None:
        if self.warmup_steps < 0:
            raise ValueError(f"warmup steps must be >= 0, got {self.warmup_steps}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max steps must be >= 1, got {self.max_steps}")


def profile_target(target: Target, options: ProfileOptions | None = None, *,
                   script_ended: Callable[[], None] | None = None,
                   terminated: Callable[[Session, RunResult], object] | None = None) -> tuple[Session, RunResult]:
    """Run ``target`` like python does with the zero-code hooks installed; the hooks are removed and
    the session is complete however the script ends (its exception has been printed by then).

    ``script_ended()``: called as soon as the script's code has returned or raised (``runner.run``).
    ``terminated(session, result)``: on SIGTERM, where the C helper handles it, called with the session
    from inside the stopped script; the process then dies by SIGTERM (this function does not return)."""
    options = options or ProfileOptions()
    check_target(target)
    argv = (target.display if target.path is not None else target.display, *target.args)
    prof = Profiler(warmup_steps=options.warmup_steps, argv=argv, pad_id=options.pad_id,
                    telemetry=options.telemetry, ambient=True, progress=options.progress)
    prof.info_overrides["overrides"] = {k: _text(v) for k, v in options.overrides.as_dict().items()}
    inst = Instrumentation(prof, options.overrides, options.max_steps)

    def stopped(result: RunResult) -> Session:
        return prof.stop(result.end, result.detail, result.exit_code)

    def on_terminate(result: RunResult) -> None:
        assert terminated is not None
        inst.remove()
        terminated(stopped(result), result)

    inst.install()
    prof.event("context", "hardware", **hardware_context(prof.device))
    try:
        result = run(target, script_ended=script_ended, on_terminate=on_terminate if terminated else None)
    finally:
        inst.remove()
    return stopped(result), result


def _text(value: int | bool | str) -> str:
    """An override as typed on the command line (``true``/``false`` for booleans)."""
    return str(value).lower() if isinstance(value, bool) else str(value)
