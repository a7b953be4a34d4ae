"""The rows of the compatibility matrix: which script, how many ranks, and what a sane profile of it
holds (the phases that must appear, and the phase each piece of the framework's own work belongs in)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

STEP_PHASES = ("forward", "backward", "optimizer")
SAVE = "checkpoint"   # a save call: the checkpoint phase must hold the largest share of it
EVAL_LOOP = "eval"    # an evaluation loop: eval has time, none of it is forward, backward or optimizer


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One framework set-up, run plainly and under ``throughput profile``.

    ``work`` maps a label the script times (``compat/rows/_common.py``) to what its time must show,
    or to None when the row only reports where it landed. ``SAVE``: the save functions the checkpoint
    phase is defined by (``torch.save``, safetensors' ``save_file``, ``torch.distributed.checkpoint.save``)
    spend most of their time in ``checkpoint``. ``EVAL_LOOP``: a framework's evaluation loop has time in
    ``eval`` and none in the training phases (the loop's own bookkeeping between batches is ``other``,
    which for tiny models is most of it). A framework's whole save routine (state dicts, file moves,
    barriers) and a compiling first call are reported.
    ``phases`` must each have time in the profile's steady-state steps.
    """

    key: str                              # folder name under the run directory
    name: str                             # shown in the table
    packages: tuple[str, ...]             # distributions whose versions the table shows
    script: str                           # file in compat/rows/
    args: tuple[str, ...] = ()
    ranks: int = 1
    micro_steps: int = 1                  # forward/backward passes per optimizer update
    phases: tuple[str, ...] = STEP_PHASES
    work: Mapping[str, str | None] = field(default_factory=dict)
    exercises: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    known_failure: str = ""               # a capture bug, filed with its xfail test: the row must fail

    def __post_init__(self) -> None:
        if self.ranks not in (1, 2):
            raise ValueError(f"row {self.key}: ranks must be 1 or 2, got {self.ranks}")


ROWS: tuple[Row, ...] = (
    Row(key="lightning_trainer", name="Lightning Trainer", packages=("lightning",), script="lightning_trainer.py",
        work={"trainer.save_checkpoint": None, "torch.save": SAVE, "validation": EVAL_LOOP},
        exercises="automatic optimization: training_step and backward inside optimizer.step(closure); "
                  "ModelCheckpoint every 15 of 30 updates (torch.save); validation every 15 updates and "
                  "the sanity check before training"),
    Row(key="lightning_accumulate", name="Lightning Trainer, accumulate_grad_batches=2", packages=("lightning",),
        script="lightning_trainer.py", args=("--accumulate", "2"), micro_steps=2,
        work={"trainer.save_checkpoint": None, "torch.save": SAVE, "validation": EVAL_LOOP},
        exercises="as above with 2 micro-batches per update: the first a plain closure call, the last "
                  "inside optimizer.step(closure)"),
    Row(key="fabric_ddp", name="Lightning Fabric, DDP, 2 ranks", packages=("lightning",), script="fabric_ddp.py",
        ranks=2, work={"fabric.save": None, "torch.save": SAVE},
        exercises="setup_dataloaders (DistributedSampler injected by re-creating the DataLoader), "
                  "fabric.backward, DDP all-reduce over gloo, fabric.save at the end"),
    Row(key="hf_trainer", name="transformers Trainer", packages=("transformers", "accelerate", "safetensors"),
        script="hf_trainer.py", micro_steps=2,
        work={"Trainer._save_checkpoint": None, "safetensors save_file": SAVE, "torch.save": SAVE,
              "evaluate": EVAL_LOOP},
        exercises="random-init 2-layer GPT-2 from a config, local token data, gradient accumulation 2, "
                  "save every 15 of 30 updates (safetensors model, torch.save optimizer/scheduler/RNG), "
                  "evaluation every 15 updates"),
    Row(key="accelerate", name="Accelerate prepare loop", packages=("accelerate", "safetensors"),
        script="accelerate_loop.py", micro_steps=2,
        work={"accelerator.save_state": None, "safetensors save_file": SAVE, "torch.save": SAVE},
        exercises="prepare(model, optimizer, loader, scheduler), accumulate() with 2 micro-batches, "
                  "AcceleratedOptimizer.step skipping between syncs, save_state every 15 updates (model through "
                  "safetensors, optimizer and scheduler through torch.save)"),
    Row(key="compile_module", name="torch.compile(model), inductor", packages=(), script="compile_step.py",
        args=("--mode", "module", "--backend", "inductor"), work={"first call (compiles)": None},
        exercises="the model compiled by inductor on the CPU; backward and optimizer eager; dynamo's "
                  "graph, break and recompile counts printed and compared"),
    Row(key="compile_step", name="torch.compile(train step), eager backend", packages=(), script="compile_step.py",
        args=("--mode", "step", "--backend", "eager"), phases=("optimizer",), work={"first call (compiles)": None},
        exercises="zero_grad, forward, backward and clip_grad_norm_ inside one compiled function; graphs "
                  "and breaks are decided by dynamo before the backend, so eager shows them at a third "
                  "of inductor's compile time"),
    Row(key="grad_scaler_off", name="GradScaler disabled (CPU)", packages=(), script="grad_scaler.py",
        args=("--enabled", "no"),
        exercises="scale/unscale_/clip/step/update with enabled=False, as CUDA scripts run on a CPU"),
    Row(key="grad_scaler_skips", name="GradScaler enabled, 1 skipped step", packages=(), script="grad_scaler.py",
        args=("--enabled", "yes"),
        exercises="the CPU GradScaler; the first scaled loss overflows, scaler.step skips that update: "
                  "29 updates from 30 iterations"),
    Row(key="fsdp2", name="FSDP2 fully_shard, 2 ranks", packages=(), script="fsdp2.py", ranks=2,
        work={"dcp.save": SAVE},
        exercises="fully_shard per layer and root over gloo on the CPU, torch.distributed.checkpoint.save"),
)
