"""Explanations of failures already traced to their mechanism, each shown only when its exact symptom
(a substring of the failing check's evidence or traceback) appears again. A symptom not listed here is
reported with its evidence alone."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Cause:
    rows: tuple[str, ...]
    symptom: str
    explanation: str


CAUSES: tuple[Cause, ...] = (
    Cause(rows=("fabric_ddp",), symptom="The missing attributes are ['loader']", explanation=(
        "Why: Fabric's `setup_dataloaders` injects a DistributedSampler by re-creating the DataLoader "
        "(`lightning/fabric/utilities/data.py`, `_get_dataloader_init_args_and_kwargs`). It reads "
        "`inspect.signature(dataloader.__init__)`; finding `**kwargs` there, it adds the parameters of "
        "`inspect.signature(DataLoader.__init__)` and pops `self`. Under the profiler `DataLoader.__init__` is "
        "`loaders.py`'s `__init__(loader, *args, **kwargs)` with no `__wrapped__`, so the first parameter is "
        "named `loader`, is not popped, has no default and is no attribute of the loader: Lightning raises. "
        "Naming it `self` would not be enough: `batch_size`, `shuffle`, ... would then be missing from the "
        "parameters, and Lightning would silently re-create the loader with their defaults. The wrapper "
        "must carry the original signature (`functools.wraps`, i.e. `__wrapped__`).")),
    Cause(rows=("lightning_accumulate",), symptom="micro-steps per step", explanation=(
        "Where to look: Lightning runs the last micro-batch of each update inside `optimizer.step(closure)` "
        "and the others as plain closure calls; capture counts the first backward inside a step's closure as "
        "a micro-batch and later ones as re-evaluations (LBFGS) (`capture/backward.py`, "
        "`OptimizerCalls.first_closure_backward`; without Lightning: "
        "`tests/capture/test_framework_mechanisms.py`). An epoch whose batch count is not a multiple of the "
        "accumulation ends with a shorter update (Lightning steps on the epoch's last batch), which the "
        "profile records as such: the row's data keeps the count even.")),
    Cause(rows=("compile_step",), symptom="_thread.get_ident", explanation=(
        "Why: dynamo traces into the zero-code wrappers that replace `Optimizer.zero_grad`, `Tensor.backward` "
        "and `clip_grad_norm_` inside the compiled function. Each starts with `_get_ident() != self._owner` "
        "(`throughput/capture/hooks.py`, e.g. line 248 in `backward`): `threading.get_ident` is a C builtin "
        "dynamo cannot trace, so every wrapper call is a graph break, where the plain run has one break at "
        "`Optimizer.zero_grad` (which dynamo skips on purpose) and one at `Tensor.backward`.")),
    Cause(rows=("compile_step",), symptom="Tensor.item()", explanation=(
        "Why: after the backward the wrapper reads the loss (`_after_backward` -> `_scalar` -> "
        "`capture/steps.py` `keep_loss`: `float(loss.item())`) inside the traced region: a graph break and "
        "dynamo's `Tensor.item()` warning on stderr.")),
    Cause(rows=("compile_step",), symptom="TensorBase.to", explanation=(
        "Why: `Tensor.to` is replaced by a Python wrapper that calls the original C method as a plain "
        "function (`orig(tensor, ...)`); dynamo does not know how to trace that builtin and breaks the graph "
        "(in the plain run `t.to(...)` is a tensor method dynamo handles). Inside the compiled step the call "
        "comes from `clip_grad_norm_`, which moves its norms with `.to()`.")),
    Cause(rows=("compile_step",), symptom="_bwd_depth == 0", explanation=(
        "Why: dynamo guards on the instrumentation's own mutable counters it read while tracing "
        "(`self._bwd_depth`, `self._backward_calls` in `hooks.py`); they change on every step, the guards "
        "fail and the frames recompile.")),
    Cause(rows=("hf_trainer", "accelerate"), symptom="'safetensors save_file' in checkpoint", explanation=(
        "Why: the checkpoint phase covers `torch.save` only (`hooks.py`: `wrap_phase(self, torch.save, "
        "\"checkpoint\")`). Trainer writes the model through `save_pretrained` -> "
        "`safetensors.torch.save_file`, Accelerate's `save_state` through `accelerate.utils.save` -> "
        "`safetensors.torch.save_file`; nothing times that call, so it lands in `other` (the optimizer, "
        "scheduler and RNG states go through `torch.save` and land in `checkpoint`).")),
    Cause(rows=("fsdp2",), symptom="'dcp.save' in checkpoint", explanation=(
        "Why: the checkpoint phase covers `torch.save` only. `torch.distributed.checkpoint.save` writes each "
        "tensor item with `torch.save` (`filesystem.py` `_write_item`): that small part lands in `checkpoint`; "
        "its planning, the collectives that agree on the global plan, and the metadata and file commits "
        "land in `other`.")),
)


def explain(row: str, evidence: str) -> str:
    """The known mechanisms behind ``evidence`` for ``row``, one paragraph each, or "" when none matches."""
    return "\n\n".join(c.explanation for c in CAUSES if row in c.rows and c.symptom in evidence)
