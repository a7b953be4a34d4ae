"""Multi-rank plumbing for ``throughput profile``: launch through torchrun, and merge afterwards.

``throughput profile --nproc-per-node N ...`` calls ``launch`` (the parent merges when torchrun
returns). Under a torchrun the user started, each rank calls ``rank_out`` for its folder and
``after_rank`` when its report is written: rank 0 then waits for the others and merges.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from throughput.capture.distributed import rank_dir, rank_env, torchrun_command
from throughput.cli.errors import CliError
from throughput.cli.ranks_cmd import merge
from throughput.report.ranks import render_ranks_table

PARENT_MERGES_ENV = "THROUGHPUT_PARENT_MERGES"   # set by ``launch``: ranks leave merging to it
MERGE_TIMEOUT_S = 120.0


def strip_option(argv: Sequence[str], name: str, takes_value: bool = True) -> list[str]:
    """``argv`` without ``name`` (as ``name VALUE`` or ``name=VALUE``)."""
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == name:
            skip = takes_value
        elif not token.startswith(f"{name}="):
            out.append(token)
    return out


def launch(nproc_per_node: int, profile_args: Sequence[str], script_argv: Sequence[str], out: Path,
           quiet: bool = False) -> int:
    """Run ``throughput profile`` on ``nproc_per_node`` ranks through torch.distributed.run, then
    merge the rank reports under ``out`` (printing the merged table unless ``quiet``). Returns
    torchrun's exit status."""
    if rank_env() is not None:
        raise CliError("profile: --nproc-per-node inside a torchrun rank; run `throughput profile script.py` "
                       "under torchrun, or --nproc-per-node without torchrun, not both")
    try:
        ours = strip_option(strip_option(profile_args, "--out"), "--nproc-per-node")
        cmd = torchrun_command(nproc_per_node, script_argv, out, ours)
    except ValueError as e:
        raise CliError(f"profile: {e}") from None
    env = dict(os.environ, **{PARENT_MERGES_ENV: "1"})
    code = subprocess.run(cmd, env=env).returncode
    _merge_and_print(out, wait_for=0, quiet=quiet)
    return code


def rank_out(out: Path) -> Path:
    """This process's report folder: ``out/rank-<r>`` under torchrun, else ``out``."""
    env = rank_env()
    return rank_dir(out, env.rank) if env is not None else out


def is_quiet_rank() -> bool:
    """Ranks other than 0 print no report (rank 0 prints the merged one)."""
    env = rank_env()
    return env is not None and env.rank != 0


def after_rank(out: Path, quiet: bool = False) -> None:
    """Called by each rank after writing its report: rank 0 merges unless a launcher parent will
    (and prints the merged table unless ``quiet``)."""
    env = rank_env()
    if env is None or env.rank != 0 or env.world_size < 2 or os.environ.get(PARENT_MERGES_ENV):
        return
    _merge_and_print(out, wait_for=env.world_size, quiet=quiet)


def _merge_and_print(out: Path, wait_for: int, quiet: bool) -> None:
    try:
        summary = merge(out, wait_for=wait_for, timeout_s=MERGE_TIMEOUT_S)
    except CliError as e:
        if not quiet:  # --quiet: nothing but the script's own output, this note included
            print(f"throughput: could not merge the rank reports: {e}", file=sys.stderr)
        return
    if quiet:
        return
    print("\n" + render_ranks_table(summary).rstrip("\n"), file=sys.stderr)
    print(f"merged report: {out}/ranks.md (per-rank reports in {out}/rank-<r>/)", file=sys.stderr)
