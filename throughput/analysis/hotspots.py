"""Hot functions from a py-spy speedscope profile: own (self) time per function, split into the main
process and the loader workers. Pure: takes the parsed JSON, does no I/O."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

_PROFILE_PID = re.compile(r"Process (\d+)")


@dataclass(frozen=True, slots=True, kw_only=True)
class HotFunction:
    """A function's own time (samples where it was the innermost Python frame)."""

    role: str            # "main" or "worker"
    function: str
    file: str
    line: int            # the line most samples were on
    own_s: float
    share: float         # of all sampled time of this role, 0..1
    processes: int       # how many processes of this role it was seen in


def _leaf(sample: Sequence[int], frames: Sequence[Mapping[str, Any]]) -> int | None:
    # speedscope stacks run root first; py-spy adds pseudo frames ("process N", "thread N") with no file
    for index in reversed(sample):
        if frames[index].get("file"):
            return index
    return None


def hot_functions(speedscope: Mapping[str, Any], main_pid: int, top: int = 10) -> tuple[HotFunction, ...]:
    """The ``top`` functions by own time for the main process (pid ``main_pid``) and for the other
    processes (loader workers), main first. Profiles whose name carries no pid count as main."""
    frames = speedscope.get("shared", {}).get("frames", [])
    own: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    lines: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
    pids: dict[tuple[str, str, str], set[int]] = defaultdict(set)
    total: Counter[str] = Counter()
    for profile in speedscope.get("profiles", []):
        m = _PROFILE_PID.search(str(profile.get("name", "")))
        pid = int(m.group(1)) if m else main_pid
        role = "main" if pid == main_pid else "worker"
        weights = profile.get("weights") or [1.0] * len(profile.get("samples", []))
        for sample, weight in zip(profile.get("samples", []), weights):
            total[role] += weight
            leaf = _leaf(sample, frames)
            if leaf is None:
                continue
            frame = frames[leaf]
            key = (str(frame.get("name", "?")), str(frame.get("file", "")))
            own[role][key] += weight
            lines[key][int(frame.get("line") or 0)] += weight
            pids[(role, *key)].add(pid)
    out: list[HotFunction] = []
    for role in ("main", "worker"):
        for (name, file), own_s in own[role].most_common(top):
            out.append(HotFunction(role=role, function=name, file=file, line=lines[(name, file)].most_common(1)[0][0],
                                   own_s=own_s, share=own_s / total[role] if total[role] else 0.0,
                                   processes=len(pids[(role, name, file)])))
    return tuple(out)
