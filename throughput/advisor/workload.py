"""``WorkloadTarget``: probes that build the model, data and loop in this process from a config.

A workload is built by a user callable ``build(config) -> Workload`` (recipes and the benchmark use
this). The build applies the keys only it can apply (``micro_batch_size`` and the DataLoader keys via
``make_loader``, ``activation_checkpointing`` in the model); the target applies ``amp``, ``tf32``,
``grad_accum`` and ``compile`` in its own short training loop.

Config keys: micro_batch_size, grad_accum, amp ("fp32" | "bf16" | "fp16"), tf32, num_workers,
pin_memory, persistent_workers, prefetch_factor, activation_checkpointing, compile, seed.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import torch

from throughput.finding import int_setting
from throughput.advisor.trials import Config, MemoryMeter, ProbeResult, is_oom, one_line, release_memory
from throughput.capture.batch import describe_batch
from throughput.hardware import PrecisionOptions

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
WORKLOAD_KEYS = frozenset({"micro_batch_size", "grad_accum", "amp", "tf32", "num_workers", "pin_memory",
                           "persistent_workers", "prefetch_factor", "activation_checkpointing", "compile",
                           "seed"})


@dataclass(slots=True, kw_only=True)
class Workload:
    """What a build callable returns: a model, its optimizer, a batch iterable and the loss."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loader: Iterable[Any]
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor]
    device: str = "cpu"


BuildFn = Callable[[Config], Workload]
DEFAULT_MIN_MEASURE_S = 0.2       # seconds of measured steps a probe takes at least


def make_loader(dataset: Any, config: Config, **kwargs: Any) -> torch.utils.data.DataLoader[Any]:
    """A DataLoader from the standard keys (micro_batch_size, num_workers, pin_memory, persistent_workers,
    prefetch_factor). ``kwargs`` (shuffle, collate_fn, ...) pass through."""
    workers = int_setting(config, "num_workers", 0)
    extra: dict[str, Any] = {}
    if workers > 0:
        extra["persistent_workers"] = bool(config.get("persistent_workers", False))
        extra["prefetch_factor"] = int_setting(config, "prefetch_factor", 2)
    return torch.utils.data.DataLoader(
        dataset, batch_size=int_setting(config, "micro_batch_size", 1),
        num_workers=workers, pin_memory=bool(config.get("pin_memory", False)), drop_last=True,
        **extra, **kwargs)


def _to_device(batch: Any, device: str) -> Any:
    if device == "cpu":
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _cycle(loader: Iterable[Any]) -> Iterator[Any]:
    while True:
        got = False
        for batch in loader:
            got = True
            yield batch
        if not got:
            raise ValueError("the workload's loader yields no batches (dataset smaller than one batch?)")


class WorkloadTarget:
    """Runs ``build(config)`` for ``warmup + steps`` optimizer steps in this process.

    A probe measures ``steps`` optimizer steps after the warm-up, and more while the measured steps add
    up to less than ``min_measure_s``: on the benchmark's compute-bound workload 5 steps took ~45 ms,
    and a window that short decided a precision A/B by noise (bf16 measured 11% slower than fp32 at a
    size where A/B rounds of 0.5 s show it 50% faster).

    Bounded: a probe stops after ``time_limit_s`` (reporting the steps it measured). Out-of-memory
    errors (CUDA or CPU allocator, MemoryError, the kernel's OOM killer for an isolated probe) are
    caught and returned as ``oom=True``.

    ``isolate``: run each probe in a fresh child process (``throughput.advisor.isolate``: a clean memory
    baseline per probe, nothing left behind in this process). None (default): wherever possible, i.e.
    on CPU with a picklable ``build``; False: in this process. ``prime=False`` skips the per-precision
    priming step (the probe server already primed the process).
    """

    supported = WORKLOAD_KEYS

    def __init__(self, build: BuildFn, *, warmup_steps: int = 1, time_limit_s: float = 60.0,
                 seed: int = 0, isolate: bool | None = None, prime: bool = True,
                 min_measure_s: float = DEFAULT_MIN_MEASURE_S) -> None:
        if warmup_steps < 0 or time_limit_s <= 0 or not 0 <= min_measure_s < time_limit_s:
            raise ValueError(f"need warmup_steps >= 0, time_limit_s > 0 and 0 <= min_measure_s < time_limit_s, "
                             f"got {warmup_steps}, {time_limit_s}, {min_measure_s}")
        self.min_measure_s = min_measure_s
        self.build = build
        self.warmup_steps = warmup_steps
        self.time_limit_s = time_limit_s
        self.seed = seed
        self.primed: set[str] = set() if prime else {"fp32", "bf16", "fp16"}
        if isolate is None:
            from throughput.advisor.isolate import can_isolate
            isolate = can_isolate(build)
        self.isolate = isolate

    def run(self, config: Config, steps: int) -> ProbeResult:
        """One probe. In-process, the first call for each precision also runs one unmeasured step, so
        that one-time costs of the process (kernel selection and primitive caches per dtype, thread
        pools, lazy library initialisation) land in no probe's time or memory. Isolated probes need no
        such step: their parent server paid those costs once (``throughput.advisor._prime``)."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if self.isolate:
            from throughput.advisor.isolate import run_isolated
            make = functools.partial(WorkloadTarget, self.build, warmup_steps=self.warmup_steps,
                                     time_limit_s=self.time_limit_s, seed=self.seed, isolate=False,
                                     prime=False, min_measure_s=self.min_measure_s)
            return run_isolated(make, config, steps, self.time_limit_s)
        amp = str(config.get("amp", "fp32"))
        if amp not in self.primed:       # cheap: no loader workers, no accumulation
            self.primed.add(amp)
            self._run_once({**config, "num_workers": 0, "grad_accum": 1}, 1)
        return self._run_once(config, steps)

    def _run_once(self, config: Config, steps: int) -> ProbeResult:
        t0 = time.perf_counter()
        device = "cuda" if torch.cuda.is_available() else "cpu"
        meter = MemoryMeter(device)
        meter.start()
        torch.manual_seed(int_setting(config, "seed", self.seed))
        old_tf32 = torch.backends.cuda.matmul.allow_tf32
        workload: Workload | None = None
        try:
            torch.backends.cuda.matmul.allow_tf32 = bool(config.get("tf32", False))
            workload = self.build(config)
            meter.device = workload.device
            rates = self._loop(workload, config, steps, t0)
            return ProbeResult(**rates, peak_memory_bytes=meter.peak_bytes(), wall_s=time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001 - a probe reports every failure, it never crashes the advisor
            return ProbeResult(oom=is_oom(e), error=one_line(e), peak_memory_bytes=meter.peak_bytes(),
                               wall_s=time.perf_counter() - t0)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = old_tf32
            del workload
            release_memory(device)

    def _loop(self, w: Workload, config: Config, steps: int, t0: float) -> dict[str, Any]:
        accum = int_setting(config, "grad_accum", 1)
        amp = str(config.get("amp", "fp32"))
        # torch.compile returns a callable that forwards to the module; typed as the module it wraps
        model: torch.nn.Module = torch.compile(w.model) if config.get("compile") else w.model  # type: ignore[assignment]  # torch's stubs: compile() returns a callable, same call interface
        dtype = AMP_DTYPES.get(amp)
        scaler = torch.amp.GradScaler("cuda") if amp == "fp16" and w.device.startswith("cuda") else None
        batches = _cycle(w.loader)
        durations: list[float] = []
        samples = tokens = 0
        data_wait = 0.0
        losses: list[float] = []
        # Warm-up drains the batches loader workers prefetched while the model was built (workers x
        # prefetch_factor of them): counting those would credit workers with throughput they cannot sustain.
        workers = int_setting(config, "num_workers", 0)
        prefetched = workers * int_setting(config, "prefetch_factor", 2) if workers else 0
        warmup = max(self.warmup_steps, math.ceil((prefetched + 1) / accum)) if prefetched else self.warmup_steps
        # Workers deliver batches round-robin, in bursts: measure whole rounds (>= 2 batches per worker).
        steps = max(steps, math.ceil(2 * workers / accum))
        try:
            step = -1
            # ... and at least min_measure_s of them: a window of a few milliseconds is noise, not a rate.
            while (step := step + 1) < warmup + steps or sum(durations) < self.min_measure_s:
                start = time.perf_counter()
                s, t, d, loss = self._step(model, w, batches, accum, dtype, scaler)
                if w.device.startswith("cuda"):
                    torch.cuda.synchronize()   # sync point: probe step timing must include device work
                if step >= warmup:
                    durations.append(time.perf_counter() - start)
                    samples, tokens, data_wait = samples + s, tokens + t, data_wait + d
                losses.append(loss)
                if time.perf_counter() - t0 > self.time_limit_s and durations:
                    break
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()           # shuts the DataLoader iterator (and its workers) down now
        return _rates(durations, samples, tokens, data_wait, losses)

    def _step(self, model: torch.nn.Module, w: Workload, batches: Iterator[Any], accum: int,
              dtype: torch.dtype | None, scaler: Any) -> tuple[int, int, float, float]:
        samples = tokens = 0
        data_s = 0.0
        total = 0.0
        for _ in range(accum):
            t = time.perf_counter()
            batch = next(batches)
            data_s += time.perf_counter() - t
            stats = describe_batch(batch, count_padding=False)
            samples += stats.samples or 0
            tokens += stats.tokens or 0
            batch = _to_device(batch, w.device)
            ctx = torch.autocast(w.device.split(":")[0], dtype=dtype) if dtype else contextlib.nullcontext()
            with ctx:
                loss = w.loss_fn(model, batch) / accum
            (scaler.scale(loss) if scaler else loss).backward()
            total += float(loss.detach())   # sync point: probes read each loss for the A/B loss check
        if scaler:
            scaler.step(w.optimizer)
            scaler.update()
        else:
            w.optimizer.step()
        w.optimizer.zero_grad(set_to_none=True)
        if not math.isfinite(total):
            raise FloatingPointError(f"loss is {total} (not finite) under this configuration")
        return samples, tokens, data_s, total


def _rates(durations: list[float], samples: int, tokens: int, data_wait: float,
           losses: list[float]) -> dict[str, Any]:
    """Rates over the whole measured window (total samples / total time). Not a median of steps: with
    loader workers batches arrive in bursts, and a median of bursty steps overstates throughput."""
    if not durations:
        return dict(losses=tuple(losses), steps=0)
    wall = sum(durations)
    return dict(samples_per_s=samples / wall if wall > 0 else None,
                tokens_per_s=tokens / wall if wall > 0 and tokens else None, losses=tuple(losses),
                data_wait_share=data_wait / wall if wall > 0 else None, steps=len(durations))


def precision_here() -> PrecisionOptions:
    """``hardware.precision_options`` for this machine (the device the probes run on)."""
    from throughput.hardware import cpu_has_fast_bf16, precision_options
    if torch.cuda.is_available():
        return precision_options("cuda", cuda_capability=torch.cuda.get_device_capability(),
                                 device_name=torch.cuda.get_device_name())
    return precision_options("cpu", cpu_fast_bf16=cpu_has_fast_bf16())


def supported_precisions() -> tuple[str, ...]:
    """Precisions worth an A/B trial on this machine: bf16 where the hardware runs it natively (CUDA
    compute capability >= 8.0; CPU with AMX or AVX512-BF16), else fp16 (with GradScaler) on CUDA."""
    return precision_here().candidates


def device_fixed_settings() -> dict[str, bool]:
    """Settings applied without a trial: pinned memory on CUDA, TF32 matmuls on Ampere and newer."""
    if not torch.cuda.is_available():
        return {}
    return {"pin_memory": True, "tf32": precision_here().tf32}
