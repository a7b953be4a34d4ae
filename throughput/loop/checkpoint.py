"""Crash-proof checkpoints: atomic writes, a checksum verified on load, the last K kept.

File layout (``ckpt-00000120.pt``)::

    THROUGHPUT-CKPT 1\\n
    <sha256 of the payload, 64 hex digits>\\n
    <payload length in bytes>\\n
    <payload: torch.save of a dict of tensors and plain types>

A write goes to a temporary file in the same folder, is flushed and fsynced, renamed over the final
name (atomic on POSIX), then the folder is fsynced so the rename itself survives a power cut. A reader
therefore sees either the previous set of checkpoints or the new one, never half a file under a final
name; a truncated or altered file fails its checksum and the previous checkpoint is used instead.
Payloads load with ``torch.load(weights_only=True)``: no pickled code runs on load.

Anything named like a checkpoint that cannot be used is skipped the same way, never raised: a folder or
other non-file under that name, a file that cannot be read, and a payload that verifies but that the
caller's ``validate`` refuses (e.g. missing keys). This module prints nothing: ``Loaded.skipped`` says
what was skipped and why, and the training loop logs it in its own style.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

MAGIC = b"THROUGHPUT-CKPT 1\n"
NAME_RE = re.compile(r"^ckpt-(\d{8})\.pt$")
TMP_PREFIX = ".tmp-ckpt-"
# Testing hook: seconds to pause half-way through writing the temporary file, so a test can kill the
# process in the middle of a checkpoint write. Unset (0) in normal use.
PAUSE_ENV = "THROUGHPUT_CKPT_WRITE_PAUSE_S"


class CheckpointError(RuntimeError):
    """No usable checkpoint, or one that belongs to another run (the message says which and why)."""


class DamagedCheckpoint(CheckpointError):
    """A checkpoint file that fails its header, length or checksum check."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded:
    """A verified checkpoint: its step, path, the payload dict, and the damaged newer files skipped."""

    step: int
    path: Path
    payload: dict[str, Any]
    skipped: tuple[str, ...] = ()          # "<file>: <reason>" of each damaged newer checkpoint
    skipped_paths: tuple[Path, ...] = ()

    def quarantine(self) -> None:
        """Rename the damaged newer files to ``*.damaged`` (kept for inspection, out of the rotation)."""
        for bad in self.skipped_paths:
            try:
                os.replace(bad, bad.with_name(bad.name + ".damaged"))
            except OSError:   # gone meanwhile, or a folder where *.damaged exists: left, and skipped again
                pass


def checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"ckpt-{step:08d}.pt"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of files named like checkpoints, oldest first (not verified)."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), folder / name) for name in os.listdir(folder) if (m := NAME_RE.match(name))]
    return sorted(found)


def save_checkpoint(folder: Path, step: int, payload: dict[str, Any], keep_last: int) -> Path:
    """Write ``payload`` atomically as the checkpoint of ``step``; delete all but the newest ``keep_last``."""
    import torch

    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1, got {keep_last}")
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    header = MAGIC + hashlib.sha256(data).hexdigest().encode() + b"\n" + str(len(data)).encode() + b"\n"
    final = checkpoint_path(folder, step)
    tmp = folder / f"{TMP_PREFIX}{step:08d}-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(header)
        _write_payload(f, data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    _fsync_dir(folder)
    _prune(folder, keep_last)
    return final


def load_latest(folder: Path, *, quarantine: bool = False,
                validate: Callable[[dict[str, Any]], None] | None = None) -> Loaded | None:
    """The newest checkpoint that verifies, or None when the folder has none at all. Damaged newer
    ones (see the module docstring; ``validate`` raises ``DamagedCheckpoint`` for a payload it cannot
    use) are skipped and listed in ``Loaded.skipped``; if every one is damaged, ``CheckpointError``.
    With ``quarantine`` the damaged ones are renamed to ``*.damaged`` (kept for inspection, and no
    longer counted by ``keep_last`` pruning) once a good checkpoint is found."""
    skipped: list[tuple[Path, str]] = []
    candidates = list_checkpoints(folder)
    for step, path in reversed(candidates):
        try:
            payload = read_checkpoint(path)
            if validate is not None:
                validate(payload)
        except DamagedCheckpoint as e:
            skipped.append((path, f"{path.name}: {e}"))
            continue
        loaded = Loaded(step=step, path=path, payload=payload, skipped=tuple(m for _, m in skipped),
                        skipped_paths=tuple(p for p, _ in skipped))
        if quarantine:
            loaded.quarantine()
        return loaded
    if candidates:
        raise CheckpointError(f"every checkpoint in {folder} is damaged ({'; '.join(m for _, m in skipped)}); "
                              "start a new run with another --out")
    return None


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Read and verify one checkpoint file; ``DamagedCheckpoint`` names what is wrong."""
    import torch

    if not path.is_file():
        raise DamagedCheckpoint("not a regular file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DamagedCheckpoint(f"cannot be read: {e.strerror or type(e).__name__}") from None
    if not raw.startswith(MAGIC):
        raise DamagedCheckpoint("not a throughput checkpoint (bad header)")
    parts = raw[len(MAGIC):].split(b"\n", 2)
    if len(parts) != 3:
        raise DamagedCheckpoint("truncated header")
    digest, length, data = parts[0].decode(errors="replace"), parts[1], parts[2]
    if not length.isdigit() or int(length) != len(data):
        raise DamagedCheckpoint(f"truncated: {len(data)} of {length.decode(errors='replace')} payload bytes")
    if hashlib.sha256(data).hexdigest() != digest:
        raise DamagedCheckpoint("checksum mismatch")
    try:
        payload = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as e:  # e.g. a pickled object that weights_only refuses to build
        raise DamagedCheckpoint(f"cannot be loaded with weights_only=True: {type(e).__name__}") from None
    if not isinstance(payload, dict):
        raise DamagedCheckpoint("payload is not a dict")
    return payload


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temporary files left by a write that was killed; returns how many."""
    if not folder.is_dir():
        return 0
    stale = [folder / n for n in os.listdir(folder) if n.startswith(TMP_PREFIX) and (folder / n).is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def _write_payload(f: Any, data: bytes) -> None:
    pause_s = float(os.environ.get(PAUSE_ENV, "0") or 0)
    if pause_s <= 0:
        f.write(data)
        return
    half = len(data) // 2
    f.write(data[:half])
    f.flush()
    time.sleep(pause_s)
    f.write(data[half:])


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune(folder: Path, keep_last: int) -> None:
    # Files only: a folder named like a checkpoint is not ours to delete, and takes no slot of keep_last.
    files = [path for _, path in list_checkpoints(folder) if path.is_file()]
    for path in files[:-keep_last]:
        path.unlink(missing_ok=True)
