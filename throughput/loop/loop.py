"""The training loop: read top to bottom in ``_Run.train``.

One step = fetch a window of micro-batches (phase ``data``), forward/backward each (``forward``,
``backward``), one clipped AdamW update (``optimizer``), then maybe ``eval`` and ``checkpoint``. The
profiler records every phase, so metrics.jsonl and session.json carry phase times for free.
"""

from __future__ import annotations

import math
import os
import resource
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from throughput.analysis.loss import diagnose
from throughput.capture.device import hardware_context
from throughput.capture.profiler import Profiler, _run_end_from_exception, active_profiler
from throughput.finding import Finding
from throughput.loop import checkpoint as ckpt
from throughput.loop.config import ConfigError, TrainConfig
from throughput.loop.data import BatchStream, DataPosition, EpochBatchSampler
from throughput.loop.metrics import MetricsWriter, Progress, read_metrics, truncate_metrics
from throughput.loop.plan import Plan
from throughput.loop.recipe import Recipe, model_fingerprint
from throughput.loop.resume import ResumePlan, check_resume, resume_plan
from throughput.loop.rng import capture_rng, restore_rng, seed_everything
from throughput.loop.runtime import Runtime, build_optimizer, setup_runtime, teardown_runtime, wrap_ddp
from throughput.loop.schedules import Schedule
from throughput.loop.state import (PAYLOAD_FORMAT, PAYLOAD_VERSION, RunIdentity, check_complete, check_payload,
                                   check_run_folder, write_manifest)
from throughput.loop.step import StepStats, evaluate, train_step
from throughput.session.records import RunEnd
from throughput.timing.clock import Clock, PerfCounterClock


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainResult:
    """How a ``train`` call ended. ``end`` is completed | stopped (``max_steps``) | terminated | nonfinite."""

    end: str
    step: int                      # updates done in total (including before a resume)
    resumed_from: int | None       # checkpoint step this process started from
    final_train_loss: float | None  # mean of the last min(10, steps) logged training losses
    final_val_loss: float | None
    tokens_per_s: float | None     # median over this process's steps (eval/checkpoint time excluded)
    clip_count: int
    model_fingerprint: str
    out_dir: Path
    findings: tuple[Finding, ...]
    samples_per_s: float | None = None   # median over this process's steps (eval/checkpoint time excluded)


def run_training(recipe: Recipe, cfg: TrainConfig, *, resume: bool = False, progress: bool = True,
                 plan: Plan | None = None, clock: Clock | None = None, max_steps: int | None = None,
                 allow_config_change: bool = False) -> TrainResult:
    """Train ``recipe`` with ``cfg``; see docs/training.md. ``max_steps``: stop (with a checkpoint) after
    that many updates in this call. ``allow_config_change``: a resume may change the keys that alter only
    the rest of the run (loop/resume.py). Raises CheckpointError/RecipeError/ConfigError/PlanError/
    ResumeConfigError with one-line messages for bad input, before anything on disk is changed."""
    if max_steps is not None and max_steps < 1:
        raise ConfigError(f"max steps must be >= 1, got {max_steps}")
    rt = setup_runtime(cfg)
    try:
        run = _Run(recipe, cfg, rt, resume, progress, plan, clock or PerfCounterClock(), allow_config_change)
        return run.train(max_steps)
    finally:
        teardown_runtime(rt)


class _Run:
    def __init__(self, recipe: Recipe, cfg: TrainConfig, rt: Runtime, resume: bool, progress: bool,
                 plan: Plan | None, clock: Clock, allow_config_change: bool = False) -> None:
        self.recipe, self.cfg, self.rt, self.clock = recipe, cfg, rt, clock
        self.allow_config_change = allow_config_change
        self.out = Path(cfg.out_dir)
        self.ckpt_dir = self.out / "checkpoints"
        seed_everything(cfg.seed)
        self.raw_model = recipe.make_model(cfg)
        self.identity = RunIdentity(recipe=recipe.name, model_fingerprint=model_fingerprint(self.raw_model))
        if plan is not None:
            plan.check_model(self.identity.model_fingerprint)
        if rt.is_main:
            check_run_folder(self.out, self.identity, resume)
        self.train_set, self.val_set = recipe.make_datasets(cfg)
        self.raw_model.to(rt.device)
        self.model = wrap_ddp(self.raw_model, rt)
        if cfg.compile:
            self.model = torch.compile(self.model)  # type: ignore[assignment]  # same call interface
        self.optimizer, self.scheduler, self.scaler = build_optimizer(self.raw_model, cfg, rt)
        self.step, self.clip_count = 0, 0
        self.resumed_from: int | None = None
        changes: dict[str, Any] = {}
        position = self._resume(changes) if resume else DataPosition()
        if rt.is_main:
            write_manifest(self.out, self.identity, cfg.to_dict(),
                           changes={"step": self.step, "changed": changes} if changes else None)
        self.stream = BatchStream(self.train_set, batch_size=cfg.micro_batch_size, seed=cfg.seed,
                                  shuffle=cfg.shuffle, num_workers=cfg.num_workers,
                                  pin_memory=cfg.pin_memory and rt.device.type == "cuda",
                                  collate_fn=recipe.collate_fn, position=position, rank=rt.rank,
                                  world_size=rt.world_size, persistent_workers=cfg.persistent_workers,
                                  prefetch_factor=cfg.prefetch_factor)
        self.progress = Progress(cfg.steps, cfg.log_every, enabled=progress and rt.is_main)
        self.metrics = MetricsWriter(self.out / "metrics.jsonl" if rt.is_main else None)
        self.terminate = threading.Event()
        self.rates: list[float] = []
        self.sample_rates: list[float] = []
        self.stopping = False
        self.last_record: dict[str, Any] = {}

    # -- the loop ---------------------------------------------------------------------------------
    def train(self, max_steps: int | None = None) -> TrainResult:
        end = "completed"
        own = active_profiler() is None
        # progress=False: the loop prints its own progress (Progress), one status line is enough
        prof = Profiler(warmup_steps=min(2, self.cfg.steps - 1), progress=False) if own else active_profiler()
        assert prof is not None
        prof.event("context", "training loop settings", num_workers=self.cfg.num_workers,
                   pin_memory=self.cfg.pin_memory, optimizer="AdamW", amp=self.rt.amp,
                   grad_clipping=self.cfg.clip_grad_norm > 0)
        prof.event("context", "hardware", **hardware_context(self.rt.device.type))
        stop_at = self.step + max_steps if max_steps is not None else None
        previous = self._install_sigterm()
        last_ckpt_s = self.clock.now_s()
        error: BaseException | None = None
        try:
            while self.step < self.cfg.steps:
                lr = float(self.optimizer.param_groups[0]["lr"])  # the lr this update uses
                stats = train_step(self.model, self.raw_model, self.recipe, self.stream, self.cfg.grad_accum,
                                   self.optimizer, self.scheduler, self.scaler, self.cfg.clip_grad_norm,
                                   self.rt, prof)
                self.step += 1
                # --max-steps: stop (with a checkpoint) after that many updates, unless the run ends anyway
                self.stopping = stop_at is not None and self.step >= stop_at and self.step < self.cfg.steps
                self.clip_count += int(stats.clipped)
                nonfinite = not math.isfinite(stats.loss)
                val_loss = self._maybe_eval(prof)
                self.last_record = self._record(stats, lr, val_loss)
                # read once: a SIGTERM landing between the checkpoint decision and the exit check must not
                # end the run unsaved (it is seen at the next step, which then checkpoints)
                terminating = self.terminate.is_set()
                if nonfinite and self.cfg.stop_on_nonfinite:
                    end = "nonfinite"
                elif self._checkpoint_due(last_ckpt_s, terminating):
                    with prof.phase("checkpoint"):
                        self.save()
                    last_ckpt_s = self.clock.now_s()
                self._log_step(prof, stats)
                if end != "completed":
                    break
                if terminating:
                    end = "terminated"
                    break
                if self.stopping:
                    end = "stopped"
                    break
        except BaseException as e:
            error = e
            raise
        finally:
            self._restore_sigterm(previous)
            self.stream.close()
            self.metrics.close()
            self.progress.close()
            if own:
                self._save_session(prof, end, error)
        return self._result(end)

    def _checkpoint_due(self, last_ckpt_s: float, terminating: bool) -> bool:
        cfg = self.cfg
        return (self.step == cfg.steps or terminating or self.stopping
                or (cfg.ckpt_every_steps > 0 and self.step % cfg.ckpt_every_steps == 0)
                or (cfg.ckpt_every_s > 0 and self.clock.now_s() - last_ckpt_s >= cfg.ckpt_every_s))

    def _maybe_eval(self, prof: Profiler) -> float | None:
        cfg = self.cfg
        due = self.step == cfg.steps or (cfg.eval_every > 0 and self.step % cfg.eval_every == 0)
        if self.val_set is None or not due:
            return None
        with prof.phase("eval"):
            loader = self._val_loader()
            return evaluate(self.raw_model, self.recipe, loader, cfg.eval_batches, self.rt)

    def _val_loader(self) -> Any:
        from torch.utils.data import DataLoader, IterableDataset

        common: dict[str, Any] = dict(collate_fn=self.recipe.collate_fn, num_workers=self.cfg.num_workers,
                                      generator=torch.Generator().manual_seed(self.cfg.seed))
        if isinstance(self.val_set, IterableDataset):
            return DataLoader(self.val_set, batch_size=self.cfg.micro_batch_size, **common)
        sampler = EpochBatchSampler(len(self.val_set), self.cfg.micro_batch_size, seed=self.cfg.seed, epoch=0,
                                    start=0, shuffle=False, rank=self.rt.rank, world_size=self.rt.world_size)
        return DataLoader(self.val_set, batch_sampler=sampler, **common)

    # -- records ----------------------------------------------------------------------------------
    def _record(self, stats: StepStats, lr: float, val_loss: float | None) -> dict[str, Any]:
        record: dict[str, Any] = {"kind": "train", "step": self.step, "loss": stats.loss,
                                  "lr": lr, "grad_norm": stats.grad_norm,
                                  "clipped": stats.clipped, "clip_count": self.clip_count,
                                  "tokens": stats.tokens, "samples": stats.samples}
        if val_loss is not None:
            record["val_loss"] = val_loss
        return record

    def _log_step(self, prof: Profiler, stats: StepStats) -> None:
        index = prof.step(samples=stats.samples, tokens=stats.tokens, loss=stats.loss,
                          micro_steps=self.cfg.grad_accum, grad_norm=stats.grad_norm)
        wall_s, phases = prof.recorder.step_times(index)
        train_s = wall_s - phases.get("eval", 0.0) - phases.get("checkpoint", 0.0)
        rate = stats.tokens / train_s if stats.tokens and train_s > 0 else None
        sample_rate = stats.samples / train_s if stats.samples and train_s > 0 else None
        if rate is not None:
            self.rates.append(rate)
        if sample_rate is not None:
            self.sample_rates.append(sample_rate)
        record = dict(self.last_record, tokens_per_s=rate, samples_per_s=sample_rate, train_s=train_s,
                      step_s=wall_s, phase_s=phases, **_memory(self.rt))
        self.metrics.write(record)
        self.progress.update(self.step, stats.loss, record["lr"], rate, sample_rate)

    # -- checkpoints ------------------------------------------------------------------------------
    def save(self) -> None:
        """Checkpoint everything a resume needs (rank 0 writes; other ranks hold the same weights)."""
        if not self.rt.is_main:
            return
        payload = {
            "format": PAYLOAD_FORMAT, "version": PAYLOAD_VERSION, "step": self.step,
            "recipe": self.identity.recipe, "model_fingerprint": self.identity.model_fingerprint,
            "config": self.cfg.to_dict(), "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": capture_rng(),
            "data": self.stream.position.to_dict(), "clip_count": self.clip_count,
            "last_record": {k: v for k, v in self.last_record.items() if v is None or isinstance(v, (int, float, str, bool))},
        }
        ckpt.save_checkpoint(self.ckpt_dir, self.step, payload, self.cfg.keep_last)

    def _resume(self, changes: dict[str, Any]) -> DataPosition:
        loaded = ckpt.load_latest(self.ckpt_dir, validate=check_complete)
        if loaded is not None and self.rt.is_main:
            for line in loaded.skipped:   # one line each, in the run's own style (not a Python warning)
                print(f"train: skipped checkpoint {line}; resuming from {loaded.path.name}", file=sys.stderr)
        plan = None
        if loaded is not None:
            check_payload(loaded.payload, self.identity, loaded.path)  # ours, before touching any file
            from torch.utils.data import IterableDataset
            plan = resume_plan(loaded.payload.get("config") or {}, self.cfg.to_dict(),
                               iterable_data=isinstance(self.train_set, IterableDataset))
            check_resume(plan, step=int(loaded.payload["step"]), allow_change=self.allow_config_change,
                         out_dir=str(self.out))
            changes.update({k: list(v) for k, v in plan.changed.items()})
        if self.rt.is_main:
            ckpt.remove_stale_temporaries(self.ckpt_dir)
            if loaded is not None:
                loaded.quarantine()
        if loaded is None:
            if self.rt.is_main:
                truncate_metrics(self.out / "metrics.jsonl", 0)
            return DataPosition()
        p = loaded.payload
        self.raw_model.load_state_dict(p["model"])
        self.optimizer.load_state_dict(p["optimizer"])
        self.scheduler.load_state_dict(p["scheduler"])
        self.scaler.load_state_dict(p["scaler"])
        self.step, self.clip_count, self.resumed_from = int(p["step"]), int(p["clip_count"]), int(p["step"])
        restore_rng(p["rng"])
        if plan is not None and plan.allowed:
            self._apply_changes(plan)
        if self.rt.is_main:
            self._repair_metrics(p.get("last_record") or {})
        return DataPosition(int(p["data"]["epoch"]), int(p["data"]["index"]))

    def _apply_changes(self, plan: ResumePlan) -> None:
        """Allowed changes, from this step on: the optimizer state restored the saved hyper-parameters
        and the saved schedule, so the new values are written over them here."""
        cfg = self.cfg
        for i, group in enumerate(self.optimizer.param_groups):
            group["betas"], group["eps"] = (cfg.beta1, cfg.beta2), cfg.eps
            group["weight_decay"] = cfg.weight_decay if i == 0 else 0.0   # group 0 decays (runtime.param_groups)
        if set(plan.allowed) & {"lr", "min_lr_ratio", "warmup_steps", "pct_start", "schedule"}:
            schedule = Schedule(kind=cfg.schedule, total_steps=cfg.steps, warmup_steps=cfg.warmup_steps,
                                min_ratio=cfg.min_lr_ratio, pct_start=cfg.pct_start)
            sched = self.scheduler
            sched.lr_lambdas = [schedule for _ in self.optimizer.param_groups]
            sched.base_lrs = [cfg.lr for _ in self.optimizer.param_groups]
            for group in self.optimizer.param_groups:
                group["initial_lr"] = cfg.lr
                group["lr"] = cfg.lr * schedule(sched.last_epoch)  # the lr of the next update

    def _repair_metrics(self, last_record: dict[str, Any]) -> None:
        path = self.out / "metrics.jsonl"
        truncate_metrics(path, self.step)
        logged = {int(r["step"]) for r in read_metrics(path) if r.get("kind") == "train"}
        if last_record and self.step not in logged:
            MetricsWriter(path).write(dict(last_record, restored=True))
        MetricsWriter(path).write({"kind": "event", "step": self.step, "event": "resumed", "pid": os.getpid()})

    # -- signals, results -------------------------------------------------------------------------
    def _install_sigterm(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return None
        return signal.signal(signal.SIGTERM, lambda *_: self.terminate.set())

    def _restore_sigterm(self, previous: Any) -> None:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

    def _save_session(self, prof: Profiler, end: str, error: BaseException | None) -> None:
        """The profiled session, saying how the run ended (a crash or signal leaves a partial one)."""
        if error is not None:
            session = prof.stop(*_run_end_from_exception(error))
        elif end == "terminated":
            session = prof.stop(RunEnd.TERMINATED, "SIGTERM: checkpoint saved", 143)
        elif end == "stopped":
            session = prof.stop(RunEnd.MAX_STEPS, f"--max-steps reached at step {self.step}: checkpoint saved", 0)
        elif end == "nonfinite":
            session = prof.stop(RunEnd.EXCEPTION, "stopped: non-finite training loss", 1)
        else:
            session = prof.stop()
        if self.rt.is_main:
            from throughput.session.io import save_session
            save_session(session, self.out / "session.json")

    def _result(self, end: str) -> TrainResult:
        records = read_metrics(self.out / "metrics.jsonl") if self.rt.is_main else []
        train = [r for r in records if r.get("kind") == "train"]
        findings = diagnose_records(records, clipping=self.cfg.clip_grad_norm > 0) if self.rt.is_main else ()
        if self.rt.is_main:
            _write_diagnosis(self.out / "diagnosis.json", findings)
        tail = [float(r["loss"]) for r in train[-10:]]
        vals = [float(r["val_loss"]) for r in train if "val_loss" in r]
        return TrainResult(end=end, step=self.step, resumed_from=self.resumed_from,
                           final_train_loss=sum(tail) / len(tail) if tail else None,
                           final_val_loss=vals[-1] if vals else None,
                           tokens_per_s=_median(self.rates), clip_count=self.clip_count,
                           model_fingerprint=self.identity.model_fingerprint, out_dir=self.out,
                           findings=findings, samples_per_s=_median(self.sample_rates))


def _median(values: list[float]) -> float | None:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else None


def diagnose_records(records: list[dict[str, Any]], clipping: bool | None = None) -> tuple[Finding, ...]:
    """Loss-curve findings from metrics.jsonl records (train loss, grad norm, validation loss)."""
    train = [r for r in records if r.get("kind") == "train"]
    steps = [int(r["step"]) for r in train]
    return diagnose(steps=steps, losses=[float(r["loss"]) for r in train],
                    grad_norms=[float(r["grad_norm"]) for r in train],
                    val=[(int(r["step"]), float(r["val_loss"])) for r in train if "val_loss" in r],
                    clipping=clipping)


def _write_diagnosis(path: Path, findings: tuple[Finding, ...]) -> None:
    import json

    path.write_text(json.dumps([f.to_dict() for f in findings], indent=2) + "\n")


def _memory(rt: Runtime) -> dict[str, int | None]:
    if rt.device.type == "cuda":
        return {"cuda_max_allocated_bytes": int(torch.cuda.max_memory_allocated(rt.device))}
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    return {"rss_peak_bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale}
