"""Versioned JSON for sessions. Loading validates and fails with one line that names the problem."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Mapping

from throughput.session.records import (
    Event,
    RunEnd,
    RunInfo,
    Span,
    StepRecord,
    StepRule,
    TelemetrySample,
)
from throughput.session.retention_io import retention_from_dict
from throughput.session.session import Session

SCHEMA = "throughput.session"
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)   # 1: every step in full, no retention record


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


def _plain(obj: Any) -> Any:
    """JSON-ready values of records (what ``dataclasses.asdict`` gives, without its deep copies: a
    bounded session's thousands of steps and spans are written in a fraction of the time)."""
    names = _FIELDS.get(type(obj))
    if names is None and is_dataclass(obj) and not isinstance(obj, type):
        names = _FIELDS[type(obj)] = tuple(f.name for f in fields(obj))
    if names is not None:
        return {name: _plain(getattr(obj, name)) for name in names}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise SessionFormatError(f"{where}: expected an object, got {type(raw).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise SessionFormatError(f"{where}: unknown fields {sorted(unknown)}")
    try:
        return cls(**raw)
    except TypeError as e:
        raise SessionFormatError(f"{where}: {e}") from None


def session_from_dict(raw: Any, source: str = "session") -> Session:
    """Rebuild a session, checking schema and version. Raises SessionFormatError."""
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        raise SessionFormatError(f"{source}: not a throughput session (no '{SCHEMA}' schema marker)")
    version = raw.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise SessionFormatError(
            f"{source}: session schema version {version!r} is not supported by this throughput "
            f"(reads versions {', '.join(map(str, READABLE_VERSIONS))}); re-profile or use the matching "
            "throughput version"
        )
    try:
        info_raw = dict(raw["info"])
        info_raw["argv"] = tuple(info_raw.get("argv", ()))
        info_raw["notes"] = tuple(info_raw.get("notes", ()))
        info_raw["step_rule"] = StepRule(info_raw.get("step_rule", "manual"))
        info_raw["end"] = RunEnd(info_raw.get("end", "completed"))
        info = _build(RunInfo, info_raw, f"{source}: info")
        steps = tuple(_build(StepRecord, s, f"{source}: step {i}") for i, s in enumerate(raw["steps"]))
        spans = tuple(_build(Span, s, f"{source}: span {i}") for i, s in enumerate(raw["spans"]))
        events = tuple(_build(Event, e, f"{source}: event {i}") for i, e in enumerate(raw["events"]))
        telemetry = tuple(
            _build(TelemetrySample, t, f"{source}: telemetry {i}") for i, t in enumerate(raw["telemetry"])
        )
        retention_raw = raw.get("retention") if version >= 2 else None
        retention = retention_from_dict(retention_raw, f"{source}: retention") if retention_raw is not None else None
    except (KeyError, ValueError, TypeError) as e:
        if isinstance(e, SessionFormatError):
            raise
        raise SessionFormatError(f"{source}: malformed session ({type(e).__name__}: {e})") from None
    for step in steps:
        if step.end_s < step.start_s:
            raise SessionFormatError(f"{source}: step {step.index} ends before it starts")
    return Session(
        info=info, steps=steps, spans=spans, events=events, telemetry=telemetry,
        artifacts=tuple(raw.get("artifacts", ())), retention=retention,
    )


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
    if not text.strip():
        raise SessionFormatError(f"{p}: empty file; the run may have been killed before it saved")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        hint = "truncated (the run may have been killed while saving)" if e.pos >= len(text) - 1 else "not JSON"
        raise SessionFormatError(f"{p}: {hint} at line {e.lineno} column {e.colno}") from None
    return session_from_dict(raw, source=str(p))
