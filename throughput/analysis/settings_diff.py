"""What differs between two runs' settings, shown by ``compare`` before how the phases moved: the
command line, ``--set`` overrides, the environment knobs recorded at capture
(``capture/environment.py``), torch and Python versions, device and world size. Pure.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Mapping

from throughput.session.records import RunInfo

UNSET = "-"


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingDiff:
    name: str     # e.g. "argv", "--set batch_size", "env OMP_NUM_THREADS", "torch"
    a: str        # UNSET where run A did not have it
    b: str


def _facts(info: RunInfo) -> dict[str, str]:
    return {"argv": shlex.join(info.argv), "torch": info.torch_version or UNSET,
            "python": info.python_version or UNSET, "device": f"{info.device} ({info.device_name})",
            "world size": str(info.world_size), "dtype": info.dtype}


def _keyed(prefix: str, a: Mapping[str, str], b: Mapping[str, str]) -> list[SettingDiff]:
    return [SettingDiff(name=f"{prefix}{k}", a=a.get(k, UNSET), b=b.get(k, UNSET))
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def settings_diff(a: RunInfo, b: RunInfo) -> tuple[SettingDiff, ...]:
    """The settings whose values differ, in a fixed order. The environment is compared only when both
    runs recorded it (sessions written before it was recorded have none)."""
    fa, fb = _facts(a), _facts(b)
    out = [SettingDiff(name=k, a=fa[k], b=fb[k]) for k in fa if fa[k] != fb[k]]
    out += _keyed("--set ", a.overrides, b.overrides)
    if a.environment and b.environment:
        out += _keyed("env ", a.environment, b.environment)
    return tuple(out)


def environment_note(a: RunInfo, b: RunInfo) -> str | None:
    """Why the environment was not compared, if it was not."""
    missing = [name for name, info in (("A", a), ("B", b)) if not info.environment]
    if not missing:
        return None
    return f"environment not compared: run {' and '.join(missing)} did not record it (older session)"
