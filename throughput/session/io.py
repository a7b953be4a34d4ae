"""Versioned JSON for sessions. Loading validates and fails with one line that names the problem."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Mapping

from throughput.session.session import Session
from throughput.thresholds import PHASES_OVER_WALL_MAX
from throughput.validation import DecodeError, decode

SCHEMA = "throughput.session"
SCHEMA_VERSION = 3
# 1: every step in full, no retention record (it decodes as None). 2: no phase-name cap (its retention
# record lacks ``policy.phase_names`` and ``folded_phases``; they decode as their defaults, 64 and None).
READABLE_VERSIONS = (1, 2, 3)


class SessionFormatError(ValueError):
    """A session file that cannot be read. The message is one line naming the file and the fix."""


def session_to_dict(session: Session) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "info": _plain(session.info),
        "steps": [_plain(s) for s in session.steps],
        "spans": [_plain(s) for s in session.spans],
        "events": [_plain(e) for e in session.events],
        "telemetry": [_plain(t) for t in session.telemetry],
        "artifacts": list(session.artifacts),
        "retention": _plain(session.retention) if session.retention is not None else None,
    }


_FIELDS: dict[type, tuple[str, ...]] = {}
_SCALARS = frozenset({float, int, str, bool, type(None)})


def _plain(obj: Any) -> Any:
    """JSON-ready values of records (what ``dataclasses.asdict`` gives, without its deep copies: a
    bounded session's thousands of steps and spans are written in a fraction of the time)."""
    kind = type(obj)
    if kind in _SCALARS:   # most values: checked first, before the slower dataclass and ABC checks
        return obj
    names = _FIELDS.get(kind)
    if names is None and is_dataclass(obj) and not isinstance(obj, type):
        names = _FIELDS[kind] = tuple(f.name for f in fields(obj))
    if names is not None:
        return {name: _plain(getattr(obj, name)) for name in names}
    if isinstance(obj, Enum):
        return obj.value
    if kind is dict or isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# A float whose field name carries a unit (STYLE.md: ``_s``, ``_bytes``, ``_flops``, per-step FLOPs) is a
# time, a size or a count of operations: NaN or inf there is a damaged file, not a measurement; and no clock
# reads more than 1e12 s (31,700 years), so seconds beyond that are damage too (and would overflow the
# statistics). Unitless floats (``loss``, ``grad_norm``, a telemetry ``value``) may be anything: a diverged
# run is a real result.
UNIT_SUFFIXES = ("_s", "_bytes", "_flops", "flops", "flops_per_step")
MAX_SECONDS = 1e12


def finite_by_unit(name: str) -> float | None:
    """The session files' float policy (see ``throughput.validation``)."""
    if name.endswith("_s"):
        return MAX_SECONDS
    return math.inf if name.endswith(UNIT_SUFFIXES) else None


def session_from_dict(raw: Any, source: str = "session") -> Session:
    """Rebuild a session, checking schema, version and every field's type (``throughput.validation``),
    the retention record of schemas 2 and 3 included. Raises SessionFormatError with one line naming the
    field's path, e.g. ``run.json: steps[3].phase_s.forward: expected a number, got "fast"``."""
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        raise SessionFormatError(f"{source}: not a throughput session (no '{SCHEMA}' schema marker)")
    version = raw.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise SessionFormatError(
            f"{source}: session schema version {version!r} is not supported by this throughput "
            f"(reads versions {', '.join(map(str, READABLE_VERSIONS))}); re-profile or use the matching "
            "throughput version"
        )
    body = {k: v for k, v in raw.items() if k not in ("schema", "schema_version")}
    try:
        session = decode(Session, body, finite=finite_by_unit)
    except DecodeError as e:
        raise SessionFormatError(f"{source}: {e}") from None
    _check_consistent(session, source)
    return session


def _check_consistent(session: Session, source: str) -> None:
    """What types cannot say: a step ends after it starts, its exclusive phase times are not negative and
    add up to at most its wall time (``PHASES_OVER_WALL_MAX``: slack for rounding), and its counts are not negative."""
    for i, step in enumerate(session.steps):
        where = f"{source}: steps[{i}]"
        if step.end_s < step.start_s:
            raise SessionFormatError(f"{where}: ends before it starts (start_s {step.start_s}, end_s {step.end_s})")
        for name, mapping in (("phase_s", step.phase_s), ("device_phase_s", step.device_phase_s or {})):
            for phase, value in mapping.items():
                if value < 0:
                    raise SessionFormatError(f"{where}.{name}.{phase}: a time cannot be negative, got {value}")
        covered, wall = math.fsum(step.phase_s.values()), step.end_s - step.start_s
        if covered > wall * PHASES_OVER_WALL_MAX + 1e-6:
            raise SessionFormatError(f"{where}.phase_s: phases add up to {covered:g} s, more than the step's "
                                     f"{wall:g} s (phase times are exclusive)")
        for name in ("samples", "tokens", "padding_tokens", "micro_steps", "peak_memory_bytes"):
            value = getattr(step, name)
            if value is not None and value < 0:
                raise SessionFormatError(f"{where}.{name}: a count cannot be negative, got {value}")
        if step.padding_tokens is not None and step.tokens is not None and step.padding_tokens > step.tokens:
            raise SessionFormatError(f"{where}.padding_tokens: {step.padding_tokens} padding tokens, more than the "
                                     f"step's {step.tokens} tokens (padding is counted among them)")
    for i, span in enumerate(session.spans):
        if span.end_s < span.start_s:
            raise SessionFormatError(f"{source}: spans[{i}]: ends before it starts")
    _check_retention(session, source)


def _check_retention(session: Session, source: str) -> None:
    """The aggregates agree with the steps kept: a run saw at least the steps it kept, thins by a stride
    of at least 1, and has measured totals once a step past the warm-up was kept (the report's means
    come from them: without them it would average the kept steps, a biased sample, and say nothing)."""
    r = session.retention
    if r is None:
        return
    if r.steps_seen < len(session.steps):
        raise SessionFormatError(f"{source}: retention.steps_seen: {r.steps_seen} steps seen, fewer than the "
                                 f"{len(session.steps)} kept")
    if r.steps_seen > 0 and not session.steps:
        raise SessionFormatError(f"{source}: retention.steps_seen: {r.steps_seen} steps seen but none kept (a run "
                                 "keeps its first, slowest and last steps)")
    if r.measured is not None and r.measured.first_index + r.measured.count > r.steps_seen:
        raise SessionFormatError(f"{source}: retention.measured: steps {r.measured.first_index}.."
                                 f"{r.measured.first_index + r.measured.count - 1} measured, past the "
                                 f"{r.steps_seen} steps seen")
    if r.sample_stride < 1:
        raise SessionFormatError(f"{source}: retention.sample_stride must be at least 1, got {r.sample_stride}")
    if r.measured is None and any(step.index >= session.info.warmup_steps for step in session.steps):
        raise SessionFormatError(f"{source}: retention.measured is missing, but steps after the warm-up "
                                 f"({session.info.warmup_steps}) were kept")


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temp file in the same folder and a rename, so readers and
    crashes never see a half-written file. Creates the folder."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)   # mkstemp makes 0600; a report is as readable as any file written
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


def save_session(session: Session, path: str | os.PathLike[str]) -> Path:
    """Write atomically (temp file + rename) so a crash never leaves a half-written session."""
    return atomic_write_text(path, json.dumps(session_to_dict(session), separators=(",", ":"), allow_nan=True))


def load_session(path: str | os.PathLike[str]) -> Session:
    """Read a session file. Raises SessionFormatError (one line) for anything that is not a valid one."""
    p = Path(path)
    if not p.exists():
        raise SessionFormatError(f"{p}: no such file")
    if p.is_dir():
        candidate = p / "session.json"
        if candidate.exists():
            p = candidate
        else:
            raise SessionFormatError(f"{p}: is a directory without session.json; pass the session file")
    try:
        text = p.read_text()
    except UnicodeDecodeError:
        raise SessionFormatError(f"{p}: not a text file; pass a session .json written by throughput") from None
    except OSError as e:
        raise SessionFormatError(f"{p}: cannot be read ({e.strerror or type(e).__name__})") from None
    if not text.strip():
        raise SessionFormatError(f"{p}: empty file; the run may have been killed before it saved")
    return session_from_dict(parse_json(text, str(p), SessionFormatError), source=str(p))


def parse_json(text: str, source: str, error: Callable[[str], Exception]) -> Any:
    """``json.loads`` whose every failure is one line: truncated, not JSON, nested too deeply, a number
    too long (Python's 4300-digit limit). NaN and Infinity literals parse (sessions may hold them)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        cut = e.pos >= len(text.rstrip()) - 1 or e.msg.startswith("Unterminated string")
        hint = "truncated (the run may have been killed while saving)" if cut else "not JSON"
        raise error(f"{source}: {hint} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise error(f"{source}: nested too deeply to be a file throughput wrote") from None
    except ValueError as e:   # e.g. an integer literal longer than Python's int digit limit
        raise error(f"{source}: not valid JSON ({str(e).splitlines()[0]})") from None
