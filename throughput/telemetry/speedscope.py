"""Hot functions from a py-spy speedscope profile: own (self) time per function, split into the main
process and the loader workers. Reduces the profile to a few event details when the run stops; the
analysis layer reads them back from the session's ``pyspy_hot`` events (analysis/hotspots.py)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any, Mapping, Sequence

_PROFILE_PID = re.compile(r"Process (\d+)")


def _leaf(sample: Sequence[int], frames: Sequence[Mapping[str, Any]]) -> int | None:
    # speedscope stacks run root first; py-spy adds pseudo frames ("process N", "thread N") with no file
    for index in reversed(sample):
        if frames[index].get("file"):
            return index
    return None


def hot_functions(speedscope: Mapping[str, Any], main_pid: int, top: int = 10) -> tuple[dict[str, str | int | float], ...]:
    """The ``top`` functions by own time for the main process (pid ``main_pid``) and for the other
    processes (loader workers), main first, as ``pyspy_hot`` event details: role ("main"/"worker"),
    function, file, line (the line most samples were on), own_s, share (of all sampled time of that
    role, 0..1) and processes (how many of that role it was seen in). Profiles whose name carries no
    pid count as main."""
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
    out: list[dict[str, str | int | float]] = []
    for role in ("main", "worker"):
        for (name, file), own_s in own[role].most_common(top):
            out.append({"role": role, "function": name, "file": file,
                        "line": lines[(name, file)].most_common(1)[0][0], "own_s": own_s,
                        "share": own_s / total[role] if total[role] else 0.0,
                        "processes": len(pids[(role, name, file)])})
    return tuple(out)
