"""The vocabulary of knobs: every setting a user or the advisor can change, defined once.

A torch-free leaf module (it imports nothing from throughput). Each ``Knob`` has a type, its allowed
values, validation with one-line messages, help text, and where it can be applied:

- ``script``: zero-code, to an unmodified script, by ``throughput profile --set KEY=VALUE script.py``;
- ``recipe``: to a recipe, by ``throughput train recipe.py --set KEY=VALUE``, a plan file's key, or
  ``throughput ablate --vary KEY=A,B`` (these three read ``TrainConfig``, whose fields are knobs);
- otherwise only by a code change, which ``code`` shows (a template, ``{value}`` filled in).

``changes`` says what a change alters besides speed (the global batch, the data, the numerics);
``resume`` says whether a run may resume with another value: ``free`` (no effect on the result),
``allowed`` (changes the rest of the run, needs ``--allow-config-change``) or ``refused`` (breaks the
exact continuation: batch shape, seed, data order).

``profile --set``, ``train --set``, plan files, ``ablate --vary`` and the advisor's recommendations all
read this table; ``tests/test_knobs.py`` round-trips every knob through them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Mapping

Value = bool | int | float | str
TRUE: Final = frozenset({"1", "true", "yes", "on"})
FALSE: Final = frozenset({"0", "false", "no", "off"})
RESUME_CLASSES: Final = ("free", "allowed", "refused")


class KnobError(ValueError):
    """A knob value or key that cannot be used; the message is one line naming the key and the fix."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Knob:
    """One setting. ``kind`` is bool, int, float or str; ``minimum``/``maximum`` bound numbers
    (``open_range``: both bounds exclusive); ``choices`` list a str knob's values and ``aliases`` map other
    spellings to them; ``script_choices`` narrow the values a script accepts."""

    name: str
    kind: type
    help: str
    script: bool = False
    recipe: bool = False
    choices: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    script_choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    open_range: bool = False
    code: str = ""
    changes: str | None = None
    resume: str = "free"
    env: bool = False          # applied through the environment at process start (profile re-executes)

    def __post_init__(self) -> None:
        if self.kind not in (bool, int, float, str):
            raise ValueError(f"knob {self.name}: kind must be bool, int, float or str")
        if self.resume not in RESUME_CLASSES:
            raise ValueError(f"knob {self.name}: resume must be one of {RESUME_CLASSES}")

    @property
    def where(self) -> str:
        """``script+recipe``, ``script``, ``recipe`` or ``code``."""
        return "+".join(w for w, ok in (("script", self.script), ("recipe", self.recipe)) if ok) or "code"

    def parse(self, raw: str, *, for_script: bool = False) -> Value:
        """A ``--set`` text value -> the typed, validated value."""
        text = raw.strip()
        value: Value
        if self.kind is bool:
            if text.lower() not in TRUE | FALSE:
                raise KnobError(f"{self.name} must be bool, got {raw!r} (use true or false)")
            value = text.lower() in TRUE
        elif self.kind is int:
            try:
                value = int(text)
            except ValueError:
                raise KnobError(f"{self.name} must be int, got {raw!r}") from None
        elif self.kind is float:
            try:
                value = float(text)
            except ValueError:
                raise KnobError(f"{self.name} must be float, got {raw!r}") from None
        else:
            value = text
        return self.check(value, for_script=for_script)

    def check(self, value: object, *, for_script: bool = False) -> Value:
        """A typed value (from JSON or Python) -> the canonical validated value. Strings are parsed for
        non-str knobs (plan files may hold ``"3e-4"``); ints are accepted for floats."""
        if isinstance(value, str) and self.kind is not str:
            return self.parse(value, for_script=for_script)
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.kind) or (self.kind is not bool and isinstance(value, bool)):
            raise KnobError(f"{self.name} must be {self.kind.__name__}, got {type(value).__name__} {value!r}")
        if isinstance(value, str):
            return self._check_choice(value, for_script)
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            self._check_finite(value)
            self._check_range(value)
            return value
        raise KnobError(f"{self.name} must be {self.kind.__name__}, got {type(value).__name__} {value!r}")

    def _check_choice(self, value: str, for_script: bool) -> str:
        if not self.choices:
            if not value:
                raise KnobError(f"{self.name} must be a non-empty string")
            return value
        canonical = self.aliases.get(value.lower(), value.lower())
        allowed = self.script_choices if for_script and self.script_choices is not None else self.choices
        if canonical not in allowed:
            others = " | ".join(c for c in self.choices if c not in allowed)
            extra = "" if allowed == self.choices else f" for a script ({others} is for throughput train)"
            raise KnobError(f"{self.name} must be one of {' | '.join(allowed)}{extra}, got {value!r}")
        return canonical

    def _check_finite(self, value: float) -> None:
        # NaN passes every comparison-based range check and inf passes ">= 0": refuse them here. Ints
        # beyond 64 bits would fail later, inside torch (a seed) or a loop bound, with a traceback.
        if isinstance(value, float) and not math.isfinite(value):
            raise KnobError(f"{self.name} must be a finite number, got {value}")
        if isinstance(value, int) and not -2**63 <= value < 2**63:
            raise KnobError(f"{self.name} must fit in 64 bits, got {value}")

    def _check_range(self, value: float) -> None:
        lo, hi = self.minimum, self.maximum
        if self.open_range and lo is not None and hi is not None and not lo < value < hi:
            raise KnobError(f"{self.name} must be in ({lo:g}, {hi:g}), got {value}")
        if not self.open_range and lo is not None and hi is not None and not lo <= value <= hi:
            raise KnobError(f"{self.name} must be in [{lo:g}, {hi:g}], got {value}")
        if hi is None and lo is not None and not value >= lo:
            raise KnobError(f"{self.name} must be >= {lo:g}, got {value}")

    def code_change(self, value: Value) -> str:
        """How to make this change in code (or at launch), with ``value`` filled in."""
        return self.code.format(value=show(value)) if self.code else f"set {self.name}={show(value)} in your code"


def show(value: Value) -> str:
    """The ``--set`` spelling of a value: booleans lower-case, everything else as str()."""
    return str(value).lower() if isinstance(value, bool) else str(value)


_GA_SNIPPET = ("accum = {value}  # micro-batches per optimizer step\n"
               "for i, (x, y) in enumerate(loader):\n"
               "    loss = loss_fn(model(x), y) / accum   # so the summed gradient is the window's mean\n"
               "    loss.backward()\n"
               "    if (i + 1) % accum == 0:\n"
               "        optimizer.step()\n"
               "        optimizer.zero_grad(set_to_none=True)")
_AMP_SNIPPET = ("with torch.autocast(device_type, dtype=torch.{value}):  # bfloat16 | float16\n"
                "    loss = loss_fn(model(x), y)\n"
                "# float16 only: scaler = torch.amp.GradScaler(device_type); scaler.scale(loss).backward(); "
                "scaler.step(optimizer); scaler.update()")
_BATCH = "changes the global batch (samples per optimizer step): scale the learning rate with it"


def _k(name: str, kind: type, help: str, **kw: object) -> Knob:
    return Knob(name=name, kind=kind, help=help, **kw)  # type: ignore[arg-type]  # kw are Knob fields


_KNOBS: tuple[Knob, ...] = (
    # -- performance knobs: the advisor's ------------------------------------------------------------
    _k("micro_batch_size", int, "samples per forward/backward (per rank): the DataLoader's batch_size",
       script=True, recipe=True, minimum=1, resume="refused",
       code="DataLoader(dataset, batch_size={value}, ...)",
       changes="in a script, " + _BATCH + "; a recipe keeps it with grad_accum"),
    _k("grad_accum", int, "micro-batches per optimizer update", recipe=True, minimum=1, resume="refused",
       code=_GA_SNIPPET, changes=_BATCH),
    _k("amp", str, "autocast: auto (bf16 on CUDA compute capability >= 8.0, else fp32) | bf16 | fp16 | fp32",
       script=True, recipe=True, choices=("auto", "bf16", "fp16", "fp32"), script_choices=("bf16", "fp16", "fp32"),
       aliases={"off": "fp32", "none": "fp32", "false": "fp32", "float32": "fp32", "bfloat16": "bf16",
                "float16": "fp16", "half": "fp16"}, resume="allowed",
       code=_AMP_SNIPPET, changes="the numerics (losses agree within the advisor's tolerance when it measured)"),
    _k("tf32", bool, "TF32 matmuls and convolutions (CUDA, Ampere or newer)", script=True, recipe=True,
       resume="allowed", code="torch.backends.cuda.matmul.allow_tf32 = {value}; "
       "torch.backends.cudnn.allow_tf32 = {value}", changes="the numerics of fp32 matmuls (10-bit mantissa)"),
    _k("num_workers", int, "DataLoader worker processes", script=True, recipe=True, minimum=0,
       code="DataLoader(..., num_workers={value})"),
    _k("prefetch_factor", int, "batches prefetched per loader worker (needs num_workers > 0)", script=True,
       recipe=True, minimum=1, code="DataLoader(..., prefetch_factor={value})"),
    _k("persistent_workers", bool, "keep loader workers alive between epochs (needs num_workers > 0)",
       script=True, recipe=True, code="DataLoader(..., persistent_workers={value})"),
    _k("pin_memory", bool, "pinned host memory for batches (CUDA only)", script=True, recipe=True,
       code="DataLoader(..., pin_memory={value}) and batch.to(device, non_blocking=True)"),
    _k("packing", bool, "ask the recipe for packed rows (the recipe's build_datasets reads it)", recipe=True,
       resume="refused", code="build packed rows with throughput.packing (PackedDataset + PackingCollator, "
       "docs/packing.md)", changes="the batches' layout (several documents per row; the loss per token is "
       "unchanged)"),
    _k("activation_checkpointing", bool, "recompute activations in backward (the recipe's build_model reads "
       "it)", recipe=True, resume="allowed",
       code="x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)  # around each block"),
    _k("compile", bool, "torch.compile the model before training", recipe=True, resume="allowed",
       code="model = torch.compile(model)"),
    _k("malloc_threshold_bytes", int, "glibc malloc keeps freed blocks up to this size in the process "
       "(MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_; 0: glibc's default)", script=True, minimum=0,
       env=True, code="MALLOC_MMAP_THRESHOLD_={value} MALLOC_TRIM_THRESHOLD_={value} python train.py"),
    # -- the training loop's other settings ----------------------------------------------------------
    _k("steps", int, "optimizer updates to run in total (a resumed run continues up to this)", recipe=True,
       minimum=1),
    _k("lr", float, "peak learning rate", recipe=True, minimum=0, resume="allowed"),
    _k("min_lr_ratio", float, "final learning rate as a fraction of lr (cosine, onecycle)", recipe=True,
       minimum=0, maximum=1, resume="allowed"),
    _k("weight_decay", float, "decoupled AdamW weight decay (never applied to norms, biases, embeddings)",
       recipe=True, minimum=0, resume="allowed"),
    _k("beta1", float, "AdamW beta1", recipe=True, minimum=0, maximum=1, resume="allowed"),
    _k("beta2", float, "AdamW beta2", recipe=True, minimum=0, maximum=1, resume="allowed"),
    _k("eps", float, "AdamW epsilon", recipe=True, minimum=0, resume="allowed"),
    _k("warmup_steps", int, "linear warm-up steps (cosine, constant); onecycle uses pct_start", recipe=True,
       minimum=0, resume="allowed"),
    _k("pct_start", float, "onecycle: fraction of steps spent rising to lr", recipe=True, minimum=0, maximum=1,
       open_range=True, resume="allowed"),
    _k("schedule", str, "learning-rate schedule: cosine | onecycle | constant", recipe=True,
       choices=("cosine", "onecycle", "constant"), resume="allowed"),
    _k("clip_grad_norm", float, "clip the global gradient norm to this (0 disables clipping)", recipe=True,
       minimum=0, resume="allowed"),
    _k("device", str, "auto | cpu | cuda", recipe=True, choices=("auto", "cpu", "cuda"), resume="allowed"),
    _k("shuffle", bool, "shuffle the training set each epoch (seeded by seed and epoch)", recipe=True,
       resume="refused"),
    _k("eval_every", int, "evaluate every N steps (0: only at the end)", recipe=True, minimum=0),
    _k("eval_batches", int, "validation batches per evaluation (0: the whole set)", recipe=True, minimum=0),
    _k("ckpt_every_steps", int, "checkpoint every N steps (0: off)", recipe=True, minimum=0,
       code="save a checkpoint every {value} optimizer steps"),
    _k("ckpt_every_s", float, "checkpoint every S seconds of training (0: off)", recipe=True, minimum=0),
    _k("keep_last", int, "checkpoints kept on disk (older ones are deleted)", recipe=True, minimum=1),
    _k("seed", int, "seed for model init, data order and every RNG", recipe=True, resume="refused"),
    _k("out_dir", str, "folder for checkpoints, metrics.jsonl, session.json, diagnosis.json", recipe=True),
    _k("log_every", int, "plain-text progress line every N steps when not on a terminal", recipe=True, minimum=1),
    _k("stop_on_nonfinite", bool, "stop when the training loss is NaN or infinite (the non-finite state is not "
       "checkpointed: the last good checkpoint stays the newest)", recipe=True),
)

KNOBS: Final[Mapping[str, Knob]] = {k.name: k for k in _KNOBS}
# Other names accepted for a knob (``throughput profile`` called the batch size ``batch_size``).
KEY_ALIASES: Final[Mapping[str, str]] = {"batch_size": "micro_batch_size"}


def knob(key: str) -> Knob:
    """The knob named ``key`` (hyphens and aliases accepted). Raises KnobError naming the known keys."""
    name = canonical_key(key)
    if name not in KNOBS:
        raise KnobError(f"unknown knob {key.strip()!r}; known knobs: {', '.join(KNOBS)}")
    return KNOBS[name]


def canonical_key(key: str) -> str:
    name = key.strip().replace("-", "_")
    return KEY_ALIASES.get(name, name)


def script_knobs() -> tuple[str, ...]:
    """Knobs ``throughput profile --set`` applies to an unmodified script."""
    return tuple(k.name for k in _KNOBS if k.script)


def recipe_knobs() -> tuple[str, ...]:
    """Knobs of the training loop (``TrainConfig`` fields): ``train --set``, plan files, ``ablate --vary``."""
    return tuple(k.name for k in _KNOBS if k.recipe)


def split_assignment(item: str) -> tuple[str, str]:
    """``"lr=3e-4"`` -> ``("lr", "3e-4")``; a KnobError for anything else."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise KnobError(f"--set expects KEY=VALUE, got {item!r}")
    return canonical_key(key), value.strip()


def not_applicable(k: Knob, target: str) -> str:
    """One line: why knob ``k`` cannot be applied to ``target`` (script | recipe), and how it can be."""
    if target == "script":
        how = f"use throughput train recipe.py --set {k.name}=..." if k.recipe else "it needs a code change"
        code = k.code_change("...").splitlines()
        more = " ..." if len(code) > 1 else ""
        return f"{k.name} cannot be set on an unmodified script ({how}; in code: {code[0]}{more})"
    how = "it applies to scripts: throughput profile --set" if k.script else "it needs a code change"
    return f"{k.name} is not a training-loop key ({how})"


def help_lines(target: str | None = None) -> list[str]:
    """``name (type, where): help`` per knob, for ``--set help`` and the docs."""
    out = []
    for k in _KNOBS:
        if target == "script" and not k.script or target == "recipe" and not k.recipe:
            continue
        values = " | ".join(k.choices) if k.choices else k.kind.__name__
        out.append(f"{k.name} ({values}; {k.where}): {k.help}")
    return out
