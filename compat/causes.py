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
)


def explain(row: str, evidence: str) -> str:
    """The known mechanism behind ``evidence`` for ``row``, or "" when none matches."""
    return " ".join(c.explanation for c in CAUSES if row in c.rows and c.symptom in evidence)
