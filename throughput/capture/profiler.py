"""The embedded profiler: ``Profiler``, ``profile()`` and the ``phase`` context manager/decorator."""

from __future__ import annotations

import functools
import os
import platform
import socket
import sys
import time
import uuid
import weakref
from dataclasses import replace
from threading import get_ident
from typing import Any, Callable, Iterable, Iterator, Protocol, TypeVar

from throughput.capture import batch as _batch
from throughput.capture.batch import BatchDescriber, BatchStats
from throughput.capture.device import device_name, resolve_device, torch_version
from throughput.capture.environment import run_environment
from throughput.capture.progress import ProgressLine, ProgressView, progress_enabled
from throughput.capture.recorder import _NO_META, CompiledPhase, PhaseMisuseError, RecordedPhase, Recorder, _Frame
from throughput.capture.retention import EventStore, TelemetryStore
from throughput.capture.steps import DeviceLosses, checked_step_values, keep_loss, step_meta, to_float
from throughput.session.records import STANDARD_PHASES, Event, RunEnd, RunInfo, StepRule, TelemetrySample
from throughput.session.retention import FOLDED_PHASE, Retention, RetentionPolicy
from throughput.session.session import Session
from throughput.timing.clock import Clock, PerfCounterClock
from throughput.timing.cuda import DeviceTimer, EventFactory, cuda_event_factory

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class TelemetryHook(Protocol):
    """Started by ``Profiler.start`` and stopped by ``Profiler.stop`` (which must join its threads)."""

    def start(self, prof: "Profiler") -> None: ...
    def stop(self, prof: "Profiler") -> None: ...
    # optional: ``on_step(prof, index)`` is called after each step closes (e.g. to count its FLOPs)


DEFAULT_WARMUP_STEPS = 2
_active: "weakref.ReferenceType[Profiler] | None" = None


def active_profiler() -> "Profiler | None":
    """The running profiler of this process, if any."""
    prof = _active() if _active is not None else None
    return prof if prof is not None and prof.running else None


class PhaseContext:
    """``with prof.phase("forward"):`` or ``@prof.phase("forward")``.

    One object per (profiler, name) is cached and reused every step, so entering a phase allocates
    nothing but the recorder's frame; a stack of frames makes it safe to nest the same name. Each frame
    is kept with the thread that entered it, and an exit takes back its own thread's: one object used
    by several threads at once (a decorated function a loader thread also calls) records the recording
    thread's phases only and never closes another thread's.
    """

    __slots__ = ("_prof", "_name", "_frames")

    def __init__(self, prof: "Profiler | None", name: str) -> None:
        self._prof = prof
        self._name = name
        self._frames: list[tuple[int, _Frame | None]] = []

    def __enter__(self) -> "PhaseContext":
        prof = self._prof
        hot = prof._hot if prof is not None else None
        ident = get_ident()
        if hot is not None:   # a running profiler: straight to the recorder (one Python frame)
            self._frames.append((ident, hot[0].open(self._name) if ident == hot[1] else None))
            return self
        prof = prof if prof is not None else active_profiler()
        self._frames.append((ident, prof._open(self._name) if prof is not None else None))
        return self

    def __exit__(self, *exc: object) -> None:
        frame = self._take_frame()
        if frame is not None:
            prof = self._prof if self._prof is not None else active_profiler()
            hot = prof._hot if prof is not None else None
            if hot is not None:
                if exc and exc[0] is not None:   # phases left open inside the body close with it
                    hot[0].close_through(frame)
                else:
                    hot[0].close(frame)
            elif prof is not None:
                prof._close(frame)

    def _take_frame(self) -> _Frame | None:
        """The innermost frame this thread entered, removed (None if it entered none)."""
        ident = get_ident()
        for entry in reversed(self._frames):
            if entry[0] == ident:
                self._frames.remove(entry)   # by value, atomic: other threads may add or take theirs
                return entry[1]
        return None

    def __call__(self, fn: F) -> F:
        ctx = self

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with ctx:
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]  # a plain closure standing for F (decorator typing)


def phase(name: str) -> PhaseContext:
    """A phase on whichever profiler is running (a no-op when none is): for library code."""
    _check_phase_name(name)
    return PhaseContext(None, name)


_CHECKED_NAMES: set[str] = set()
#: Names remembered as valid. A cache only (a name past it is checked again, a few hundred ns): with no
#: profiler running, ``phase(f"req{i}")`` must not grow the process.
CHECKED_NAMES_MAX = 4096


def _check_phase_name(name: str) -> None:
    if name in _CHECKED_NAMES:   # hot path: names repeat every step
        return
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a phase name must be a non-empty string, got {name!r}")
    if name == "other":
        raise ValueError("'other' is derived (the uncovered rest of a step); choose another phase name")
    if name == FOLDED_PHASE:
        raise ValueError(f"{FOLDED_PHASE!r} holds the phase names past the run's cap; choose another phase name")
    if len(_CHECKED_NAMES) < CHECKED_NAMES_MAX:
        _CHECKED_NAMES.add(name)


class Profiler:
    """Attributes each step's wall time to phases. Starts on first use; ``stop()`` ends it.

    Args:
        warmup_steps: leading steps excluded from steady-state figures (shown separately).
        clock: time source (tests inject a fake); perf_counter by default.
        device: "auto" (CUDA events when CUDA is available), "cpu" or "cuda".
        event_factory: makes CUDA-event-like objects (tests pass a fake); implies device timing.
        pad_id: token id counted as padding when a batch has no ``attention_mask``.
        max_spans: spans kept for the trace in all (see ``retention``).
        retention: the caps of what is kept in full (``throughput.session.retention.RetentionPolicy``):
            the warm-up, the recent steps, the slowest, an even thinning of the rest; every step goes
            into exact totals and quantile sketches whatever is kept, so memory does not grow with steps;
            past ``phase_names`` distinct phase names, new ones are recorded as ``FOLDED_PHASE``.
        progress: the live status line on stderr: None shows it when stderr is a terminal (rank 0 only), True always,
            False never.
        telemetry: started with the profiler and stopped (threads joined) by ``stop()``, e.g. a
            ``throughput.telemetry.TelemetryController``.
        ambient: set by ``throughput profile`` for its own profiler, so that a script embedding its
            own Profiler still runs (a second non-ambient profiler is refused: it would double-count).
    """

    def __init__(self, *, warmup_steps: int = DEFAULT_WARMUP_STEPS, clock: Clock | None = None,
                 device: str = "auto", event_factory: EventFactory | None = None,
                 pad_id: int | None = None, max_spans: int | None = None, run_id: str | None = None,
                 argv: Iterable[str] | None = None, rank: int | None = None,
                 world_size: int | None = None, telemetry: "TelemetryHook | None" = None, ambient: bool = False,
                 retention: RetentionPolicy | None = None, progress: bool | None = None) -> None:
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
        self.warmup_steps = warmup_steps
        self._clock: Clock = clock or PerfCounterClock()
        self._device = resolve_device(device, event_factory)
        self._event_factory = event_factory
        self.pad_id = pad_id
        policy = retention or RetentionPolicy()
        self.retention_policy = policy if max_spans is None else replace(policy, max_spans=max_spans)
        self.progress = progress
        self._progress_line: ProgressLine | None = None
        self._run_id = run_id or f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self._argv = tuple(argv) if argv is not None else tuple(sys.argv)
        self._rank = rank if rank is not None else int(os.environ.get("RANK", "0"))
        self._world_size = world_size if world_size is not None else int(os.environ.get("WORLD_SIZE", "1"))
        self._recorder: Recorder | None = None
        # (recorder, owner thread) while running: the phase fast path (``open``/``close`` are looked up
        # on the recorder each time: an observer installed meanwhile shadows them)
        self._hot: tuple[Recorder, int] | None = None
        # per recorded name (at most the names cap + the standard phases + FOLDED_PHASE), while running on the host
        self._fast_phases: dict[str, RecordedPhase | CompiledPhase] | None = None
        self._owner_thread = 0
        self._phase_contexts: dict[str, PhaseContext] = {}   # per name, up to _contexts_max (then made per call)
        self._contexts_max = self.retention_policy.phase_names + len(STANDARD_PHASES)
        self._origin_s = 0.0
        self._started_unix_s = 0.0
        self._pending_batches: list[BatchStats] = []
        self._describe = BatchDescriber().describe
        self._events = EventStore(self.retention_policy)
        self._telemetry = TelemetryStore(self.retention_policy)
        self._artifacts: list[str] = []
        self._notes: list[str] = []
        self._end = RunEnd.RUNNING
        self._end_detail = ""
        self._exit_code: int | None = None
        self.step_rule = StepRule.MANUAL
        self.info_overrides: dict[str, Any] = {}
        self.running = False
        self.stopped = False
        self.ambient = ambient
        self._shadowed: Profiler | None = None
        self._telemetry_hook = telemetry
        self._on_step: Callable[[Profiler, int], None] | None = getattr(telemetry, "on_step", None)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "Profiler":
        global _active
        if self.running:
            return self
        if self.stopped:
            raise PhaseMisuseError("this Profiler was stopped; create a new one for another run")
        other = active_profiler()
        if other is not None and other is not self and other.ambient:
            # A script that embeds its own Profiler, run under `throughput profile`: both record, the
            # script's own profiler takes the module-level phase() calls until it stops.
            self._shadowed = other
        elif other is not None and other is not self:
            raise PhaseMisuseError(
                "another throughput Profiler is already running in this process; nested profilers "
                "would count time twice: stop the first one (prof.stop()) or use its phases"
            )
        timer = None
        if self._device == "cuda":
            timer = DeviceTimer(self._event_factory or cuda_event_factory())
        self._recorder = Recorder(self._clock, timer, warmup_steps=self.warmup_steps,
                                  retention=self.retention_policy, read_loss=to_float,
                                  device_losses=DeviceLosses() if self._device == "cuda" else None)
        self._origin_s = self._clock.now_s()
        self._started_unix_s = time.time()
        _active = weakref.ref(self)
        self.running = True
        self._hot = (self._recorder, self._recorder.owner_thread)
        self._owner_thread = self._recorder.owner_thread
        self._fast_phases = {} if timer is None else None
        if self._telemetry_hook is not None:
            self._telemetry_hook.start(self)
        if progress_enabled(self.progress, sys.stderr, self._rank):
            rec = self._recorder
            rec.keep_fresh()
            self._progress_line = ProgressLine(lambda: ProgressView(steps_done=rec.steps_done,
                                                                    recent=rec.recent_steps()))
            self._progress_line.start()
        return self

    def stop(self, end: RunEnd = RunEnd.COMPLETED, detail: str = "", exit_code: int | None = None) -> Session:
        """End the run: close open phases, resolve device times (one sync), convert losses."""
        global _active
        if not self.running:
            if self._recorder is None:
                self.start()
            else:
                return self.session()
        rec = self._recorder
        assert rec is not None
        self._hot = None
        self._fast_phases = None
        closed = rec.close_all()
        rec.stop_recording()
        if closed:
            self._notes.append(f"run ended inside phase(s) {', '.join(closed)}; they were closed at the end")
        if self._progress_line is not None:
            self._progress_line.stop()
            self._progress_line = None
        rec.finish_device()
        if self._telemetry_hook is not None:
            self._telemetry_hook.stop(self)   # joins sampler threads, reaps py-spy
        self._end, self._end_detail, self._exit_code = end, detail, exit_code
        self.running = False
        self.stopped = True
        if _active is not None and _active() is self:
            shadowed = self._shadowed
            _active = weakref.ref(shadowed) if shadowed is not None and shadowed.running else None
        return self.session()

    def __enter__(self) -> "Profiler":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self.stop(*_run_end_from_exception(exc))

    # -- the API used in training loops ---------------------------------------------------------
    def phase(self, name: str) -> "PhaseContext | RecordedPhase | CompiledPhase":
        """Context manager and decorator that attributes the time inside to phase ``name``."""
        fast = self._fast_phases
        if fast is not None and get_ident() == self._owner_thread:   # running, host-timed, this thread
            recorded = fast.get(name)
            return recorded if recorded is not None else self._new_fast_phase(fast, name)
        ctx = self._phase_contexts.get(name)
        if ctx is None:
            _check_phase_name(name)
            ctx = PhaseContext(self, name)   # its name is capped when it opens (Recorder.open)
            if len(self._phase_contexts) < self._contexts_max:
                self._phase_contexts[name] = ctx
        return ctx

    def _new_fast_phase(self, fast: "dict[str, RecordedPhase | CompiledPhase]",
                        name: str) -> "RecordedPhase | CompiledPhase":
        """The phase object for a name not cached: cached under the name it records, which is ``name``
        itself or, past the names cap, ``FOLDED_PHASE`` (a folded name comes here each time: a set
        lookup or two, and the cache stays within the cap)."""
        _check_phase_name(name)
        recorded_as = self._recorder.names.admit(name)  # type: ignore[union-attr]  # running implies a recorder
        recorded = fast.get(recorded_as)
        if recorded is None:
            recorded = fast[recorded_as] = self._recorder.phase_context(recorded_as)  # type: ignore[union-attr]  # idem
        return recorded

    def iter(self, iterable: Iterable[T], phase: str = "data") -> Iterator[T]:
        """Yield from ``iterable``, timing each wait for the next item as ``phase``."""
        rec = self._ensure_started() if not self.running and not self.stopped else self._recorder
        if self._fast_phases is not None and rec is not None and get_ident() == self._owner_thread:
            # host-timed, this thread: inlined (a Python frame while py-spy looks for the loop)
            if getattr(self._telemetry_hook, "samples_stacks", False):
                return rec.iterate_py(iterable, phase, self.note_batch)
            return rec.iterate(iterable, phase, self.note_batch)
        return self._iter(iterable, phase)

    def _iter(self, iterable: Iterable[T], phase: str) -> Iterator[T]:
        iterator = iter(iterable)
        while True:
            frame = self._open(phase)
            try:
                item = next(iterator)
            except StopIteration:
                self._close(frame)
                return
            except BaseException:
                self._close(frame)
                raise
            self._close(frame)
            self.note_batch(item)
            yield item

    def note_batch(self, batch: Any) -> None:
        """Remember a batch's samples/tokens/padding for the current step (CPU tensors only are read)."""
        self._pending_batches.append(self._describe(batch, self.pad_id))

    def step(self, *, samples: int | None = None, tokens: int | None = None,
             padding_tokens: int | None = None, loss: Any = None, micro_steps: int | None = None,
             grad_norm: float | None = None) -> int:
        """Close one step (one optimizer update); returns its index. Counts not given are read from iterated
        batches; counts and ``grad_norm`` given are checked (``steps.checked_step_values``: TypeError or
        ValueError naming the argument). After ``stop()`` nothing is recorded and the number of steps
        recorded is returned (a loop that profiles only its first steps goes on calling it)."""
        if self.running:
            rec = self._recorder
        elif self.stopped:   # after stop() nothing is recorded, as the phases record nothing
            self._pending_batches = []
            return self._recorder.steps_done  # type: ignore[union-attr]  # stopped implies a recorder
        else:
            rec = self._ensure_started()
        batches = self._pending_batches
        if batches:   # a new list: a deferred StepMeta keeps this one, and later batches must not join it
            self._pending_batches = []
        meta: Any
        said = samples is not None or tokens is not None or padding_tokens is not None \
            or micro_steps is not None or grad_norm is not None
        if not said and len(batches) < 2:
            # The usual step: nothing said, at most one batch. Its fields as the tuple the recorder keeps.
            b = batches[0] if batches else None
            meta = _NO_META if b is None else (b.samples, b.tokens, b.padding_tokens, 1, None, None)
        else:
            if said:   # checked here: a value that cannot be written would otherwise lose the report
                samples, tokens, padding_tokens, micro_steps, grad_norm = checked_step_values(
                    samples, tokens, padding_tokens, micro_steps, grad_norm)
            if not batches:   # counts given, no batch iterated (the zero-code step tracker): nothing to sum
                meta = (samples, tokens, padding_tokens, 1 if micro_steps is None else micro_steps, grad_norm, None)
            else:   # built when the recorder drains its log, not here in the training loop
                meta = functools.partial(step_meta, batches, samples, tokens, padding_tokens, micro_steps,
                                         grad_norm)
        if loss is not None:
            # keep_loss's usual case inlined: a CPU ``torch.Tensor`` of one element, no TorchDispatchMode
            # active, read as a float now. Two Python frames fewer a step; inside a training step, with
            # the interpreter's data out of the CPU caches, a frame costs microseconds.
            if type(loss) is _batch._tensor_class and not _batch._dispatch_depth() and loss.is_cpu:
                try:
                    value = loss.item()   # raises for more than one element: keep_loss keeps it detached
                except RuntimeError:
                    value = None
                loss = value if type(value) is float else keep_loss(loss)
            else:
                loss = keep_loss(loss)
        index = rec.end_step(meta, loss)  # type: ignore[union-attr]  # idem (hot path: no assert)
        if self._on_step is not None:
            self._on_step(self, index)
        return index

    def event(self, kind: str, message: str, **detail: float | int | str | bool) -> None:
        """Record a hygiene observation (turned into findings by analysis)."""
        rec = self._ensure_started()
        self._events.add(Event(kind=kind, step=rec.steps_done, message=message, detail=detail))

    def add_telemetry(self, samples: Iterable[TelemetrySample]) -> None:
        """Add samples (thread-safe; kept within ``retention``'s caps, totals over all of them)."""
        self._telemetry.add(samples)

    def add_artifact(self, path: str) -> None:
        self._artifacts.append(path)

    def add_note(self, note: str) -> None:
        self._notes.append(note)

    @property
    def steps_done(self) -> int:
        return self._recorder.steps_done if self._recorder is not None else 0

    def extend_warmup(self, steps: int) -> bool:
        """Make steps ``0 .. steps - 1`` warm-up steps (kept apart from the measured figures), if no
        measured step was counted yet; returns whether they are. For the zero-code hooks: steps that
        held part of a round of several optimizers' updates before its order was known."""
        if steps <= self.warmup_steps:
            return True
        if not self.recorder.hold_in_full(steps):
            return False
        self.warmup_steps = steps
        return True

    @property
    def recorder(self) -> Recorder:
        return self._ensure_started()

    @property
    def device(self) -> str:
        """'cuda' or 'cpu': where phases are timed."""
        return self._device

    @property
    def clock(self) -> Clock:
        return self._clock

    # -- results --------------------------------------------------------------------------------
    def session(self) -> Session:
        """A frozen snapshot of everything recorded so far (a running profiler gives end=running)."""
        rec = self._ensure_started()
        snap = rec.snapshot()
        info = RunInfo(
            run_id=self._run_id, argv=self._argv, device=self._device, device_name=device_name(self._device),
            torch_version=torch_version(), python_version=platform.python_version(),
            hostname=socket.gethostname(), rank=self._rank, world_size=self._world_size,
            origin_s=self._origin_s, started_unix_s=self._started_unix_s, step_rule=self.step_rule,
            warmup_steps=self.warmup_steps, end=self._end, end_detail=self._end_detail,
            exit_code=self._exit_code, notes=tuple(self._notes), environment=run_environment(),
        )
        if self.info_overrides:
            info = replace(info, **self.info_overrides)
        retention = Retention(
            policy=self.retention_policy, steps_seen=snap.steps_seen, sample_stride=snap.stride,
            measured=snap.measured, loss=snap.loss, spans_seen=snap.spans_seen, span_totals=snap.span_totals,
            telemetry_seen=self._telemetry.seen, telemetry_totals=self._telemetry.totals(),
            events_dropped=self._events.dropped, folded_phases=snap.folded_phases)
        return Session(info=info, steps=snap.steps, spans=snap.spans, events=tuple(self._events.kept),
                       telemetry=self._telemetry.kept(), artifacts=tuple(self._artifacts), retention=retention)

    def save(self, path: str | os.PathLike[str]) -> Any:
        from throughput.session.io import save_session
        return save_session(self.session(), path)

    # -- internals ------------------------------------------------------------------------------
    def _ensure_started(self) -> Recorder:
        if self._recorder is None:
            self.start()
        assert self._recorder is not None
        return self._recorder

    def _open(self, name: str) -> _Frame | None:
        """Open phase ``name`` on the recorder (the first phase starts the profiler); None from another
        thread or after stop. The running case is tested first: it is every phase of every step."""
        rec = self._recorder
        if not self.running:
            if self.stopped:
                return None
            rec = self._ensure_started()
        return rec.open(name) if get_ident() == rec.owner_thread else None  # type: ignore[union-attr]  # idem

    def _close(self, frame: _Frame | None) -> None:
        if frame is not None and self.running:
            self._recorder.close(frame)  # type: ignore[union-attr]  # running implies a recorder

    # The public phase interface for instrumentation built on a Profiler (the zero-code hooks use it):
    # ``token = prof.open_phase(name)`` ... ``prof.close_phase(token)``. The token is None from another
    # thread or after stop, and closing None does nothing. Aliases, not wrappers: no extra frame.
    open_phase = _open
    close_phase = _close


def _run_end_from_exception(exc: BaseException | None) -> tuple[RunEnd, str, int | None]:
    if exc is None:
        return RunEnd.COMPLETED, "", 0
    if isinstance(exc, KeyboardInterrupt):
        return RunEnd.INTERRUPTED, "KeyboardInterrupt", 130
    if isinstance(exc, SystemExit):
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return RunEnd.SYSTEM_EXIT, f"SystemExit({exc.code!r})", code
    return RunEnd.EXCEPTION, f"{type(exc).__name__}: {exc}".splitlines()[0][:300], 1
