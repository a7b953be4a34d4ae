"""Which multi-tensor flag an optimizer-bound run could add to its optimizer: one decision for the
verdict and for the advisor's rule, from the class name and the flags the run recorded.

torch.optim's defaults decide what a flag would change (torch 2.x ``_default_to_fused_or_foreach``):
``foreach=None`` already means foreach when every parameter is a CUDA tensor, and never on a CPU;
``fused`` is never the default. So on CUDA the flag worth adding is ``fused=True`` (for the classes that
have a fused kernel), and ``foreach=True`` only where the script turned foreach off; on a CPU it is
``foreach=True`` unless the script passed it."""

from __future__ import annotations

from typing import Final, Mapping

#: torch.optim classes that take ``foreach``.
FOREACH_OPTIMIZERS: Final = frozenset({"Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adamax",
                                       "NAdam", "RAdam", "ASGD", "Rprop"})
#: torch.optim classes with a fused CUDA kernel (``fused=True``).
FUSED_OPTIMIZERS: Final = frozenset({"Adam", "AdamW", "SGD", "Adagrad"})


def multi_tensor_flag(device: str, context: Mapping[str, object]) -> str | None:
    """``"fused=True"`` or ``"foreach=True"``: the flag that would change how this run's optimizer steps
    (``context``: the recorded ``optimizer`` class name, and ``fused``/``foreach`` where the script set
    them), or None when the run already steps that way."""
    if context.get("fused") is True:
        return None
    name = str(context.get("optimizer", ""))
    if device == "cuda":
        if name in FUSED_OPTIMIZERS:
            return "fused=True"
        if name in FOREACH_OPTIMIZERS and context.get("foreach") is not False:
            return None   # foreach is already torch's default for CUDA parameters
    return None if context.get("foreach") is True else "foreach=True"


def add_flag_action(flag: str, name: str) -> str:
    """How to apply ``flag`` as printed: to the script's own class, never another (AdamW's default weight
    decay is 0.01, Adam's 0: swapping them would change the training)."""
    if name in FOREACH_OPTIMIZERS:
        return f"add {flag} to torch.optim.{name}(...), its other arguments unchanged"
    return f"pass {flag} to the optimizer if it takes one (torch.optim's optimizers do)"


__all__ = ["FOREACH_OPTIMIZERS", "FUSED_OPTIMIZERS", "add_flag_action", "multi_tensor_flag"]
