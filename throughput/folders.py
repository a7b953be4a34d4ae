"""Output folders: which files mark a folder as holding a run throughput wrote, and whether a folder
may take a new one. A leaf (imports nothing from throughput): the CLI checks ``--out`` with it before a
run starts, and so does the embedded ``throughput.profile(out=...)``, without importing the report
package (whose import costs the CLI's start-up about 160 ms).

Both answers are checked before any work, so that a finished run never loses its report at the end, or
overwrites an older one."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable

#: The per-step export of a report folder (one JSON line per kept step).
STEPS_NAME = "steps.jsonl"
#: Files a report folder holds (``report.folder.write_report``; ``ranks`` adds ranks.md/ranks.json).
REPORT_FILES = ("session.json", "summary.json", "report.md", "trace.json", STEPS_NAME, "ranks.md",
                "ranks.json")
#: What a training run's folder holds (``throughput train``; an ablation adds ablation.json).
RUN_FILES = ("run.json", "checkpoints", "metrics.jsonl", "session.json", "report.md", "summary.json")
#: Anything throughput writes as a run's output: a folder holding one of these is taken.
OUTPUT_MARKERS = tuple(dict.fromkeys((*REPORT_FILES, "ablation.json", *RUN_FILES)))


def markers_in(folder: Path, markers: Iterable[str] = OUTPUT_MARKERS) -> list[str]:
    """The ``markers`` present in ``folder``, sorted, then its ``rank-*`` subfolders holding a session
    (a multi-rank run's layout). Empty for a folder that does not exist."""
    if not folder.is_dir():
        return []
    found = sorted(m for m in markers if (folder / m).exists())
    return found + sorted(p.name for p in folder.glob("rank-*") if (p / "session.json").exists())


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (``.`` for a relative path none of whose parts do):
    the folder a new ``path`` would be created under."""
    for parent in (path, *path.parents):
        if parent.exists():
            return parent
    return Path(".")


def write_error(folder: Path) -> str | None:
    """Why this user cannot create a file in ``folder``, or None when it can. Tried with an unnamed
    temporary file (O_TMPFILE where supported): it leaves nothing behind and, unlike ``os.access``,
    tells the truth for root and for read-only or pseudo file systems."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        return e.strerror or type(e).__name__
    return None


def check_report_folder(out_dir: str | Path) -> Path:
    """``out_dir`` as a folder a new report may be written to: not an existing file, not holding another
    run's output (``markers_in``), under a folder this user can write. Raises NotADirectoryError,
    FileExistsError or PermissionError with one line that says what to do."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"report folder {out} is an existing file; choose another path")
    found = markers_in(out)
    if found:
        raise FileExistsError(f"report folder {out} already holds another run's report "
                              f"({', '.join(found[:3])}); choose another folder or remove it")
    existing = nearest_existing(out)
    problem = write_error(existing) if existing.is_dir() else f"{existing} is a file, not a folder"
    if problem is not None:
        raise PermissionError(f"report folder {out}: cannot write under {existing} ({problem}); "
                              "choose another path")
    return out


__all__ = ["OUTPUT_MARKERS", "REPORT_FILES", "RUN_FILES", "STEPS_NAME", "check_report_folder", "markers_in",
           "nearest_existing", "write_error"]
