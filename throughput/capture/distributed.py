"""Multi-rank capture: each rank (under torchrun) writes its own report into ``<out>/rank-<r>/``;
the launcher or rank 0 merges them afterwards (see ``throughput ranks``).

``torchrun_command`` builds the launch of ``throughput profile`` through ``torch.distributed.run``
so every rank runs the zero-code profiler. Multi-node runs use the same layout: give every node
the same ``--out`` on a shared file system.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

RANK_DIR_PREFIX = "rank-"


@dataclass(frozen=True, slots=True, kw_only=True)
class RankEnv:
    """The torchrun environment of this process."""

    rank: int
    world_size: int
    local_rank: int

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"RANK={self.rank} must be in [0, WORLD_SIZE={self.world_size})")


def rank_env(environ: Mapping[str, str] | None = None) -> RankEnv | None:
    """RANK/WORLD_SIZE/LOCAL_RANK as set by torchrun, or None outside a distributed launch."""
    env = os.environ if environ is None else environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    try:
        return RankEnv(rank=int(env["RANK"]), world_size=int(env["WORLD_SIZE"]),
                       local_rank=int(env.get("LOCAL_RANK", env["RANK"])))
    except ValueError as e:
        raise ValueError(f"bad torchrun environment: {e}") from None


def rank_dir(out_dir: str | Path, rank: int) -> Path:
    """Where rank ``rank`` writes its report: ``<out_dir>/rank-<rank>``."""
    return Path(out_dir) / f"{RANK_DIR_PREFIX}{rank}"


def rank_out_dir(out_dir: str | Path, environ: Mapping[str, str] | None = None) -> Path:
    """This process's report folder: ``<out_dir>/rank-<r>`` under torchrun, else ``out_dir``."""
    env = rank_env(environ)
    return rank_dir(out_dir, env.rank) if env is not None else Path(out_dir)


def rank_session_paths(out_dir: str | Path) -> list[Path]:
    """The rank sessions present under ``out_dir``, ordered by rank."""
    found = []
    for d in Path(out_dir).glob(f"{RANK_DIR_PREFIX}*"):
        suffix = d.name[len(RANK_DIR_PREFIX):]
        if suffix.isdigit() and (d / "session.json").is_file():
            found.append((int(suffix), d / "session.json"))
    return [p for _, p in sorted(found)]


def wait_for_rank_sessions(out_dir: str | Path, world_size: int, timeout_s: float = 120.0,
                           poll_s: float = 0.2) -> list[Path]:
    """Poll until ``world_size`` rank sessions exist (or the timeout passes); return those found.
    Rank 0 uses this to merge when there is no launcher process to do it."""
    deadline = time.monotonic() + timeout_s
    paths = rank_session_paths(out_dir)
    while len(paths) < world_size and time.monotonic() < deadline:
        time.sleep(poll_s)
        paths = rank_session_paths(out_dir)
    return paths


def torchrun_command(nproc_per_node: int, script_argv: Sequence[str], out_dir: str | Path,
                     profile_args: Sequence[str] = (), nnodes: int = 1,
                     rdzv_endpoint: str | None = None, node_rank: int | None = None) -> list[str]:
    """``python -m torch.distributed.run ... -m throughput profile --out OUT [profile_args] script...``.

    Single node uses ``--standalone``; multi-node needs ``rdzv_endpoint`` (host:port of node 0).
    """
    if nproc_per_node < 1:
        raise ValueError(f"--nproc-per-node must be >= 1, got {nproc_per_node}")
    if nnodes < 1:
        raise ValueError(f"--nnodes must be >= 1, got {nnodes}")
    if nnodes > 1 and not rdzv_endpoint:
        raise ValueError("multi-node runs need a rendezvous endpoint (host:port of node 0)")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc_per_node}"]
    if nnodes == 1:
        cmd.append("--standalone")
    else:
        cmd += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]
        if node_rank is not None:
            cmd.append(f"--node-rank={node_rank}")
    return cmd + ["-m", "throughput", "profile", "--out", str(out_dir), *profile_args, *script_argv]
