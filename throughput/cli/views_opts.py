"""``throughput profile`` options for the deeper views: the operator window (``--ops [N]``), memory per
phase (on by default; ``--no-memory``), a CUDA memory snapshot, and a TensorBoard export."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from throughput.cli.args import output_folder, positive_int
from throughput.cli.errors import CliError

DEFAULT_OPS_STEPS = 5


def add_view_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ops", type=positive_int, nargs="?", const=DEFAULT_OPS_STEPS, default=None, metavar="N",
                   help="record N steady-state steps (default 5, after warm-up) with torch.profiler and fold "
                        "the operators into phases; those steps are left out of the figures")
    p.add_argument("--memory-snapshot", action="store_true",
                   help="CUDA: save the allocator's history over the window as memory_snapshot.pickle "
                        "(open at https://pytorch.org/memory_viz)")
    p.add_argument("--no-memory", action="store_true", help="do not read memory at the window's phase boundaries")
    p.add_argument("--tensorboard", type=output_folder, default=None, metavar="DIR",
                   help="also write the per-step scalars of steps.jsonl as TensorBoard events to DIR")


def takes_value(token: str, following: str | None) -> bool:
    """Whether ``token`` consumes the next argument: ``--ops`` only when a number follows."""
    return token == "--ops" and following is not None and following.isdigit()


def build_window(opts: argparse.Namespace, out: Path, warmup_steps: int) -> Any:
    """The ViewWindow for these options (None with --no-memory and no --ops/--memory-snapshot)."""
    if opts.ops is not None and opts.ops < 1:
        raise CliError(f"profile: --ops needs at least 1 step, got {opts.ops}")
    if opts.tensorboard is not None:
        import importlib.util
        if importlib.util.find_spec("tensorboard") is None:   # say so before the run, not after it
            from throughput.cli.tensorboard_out import TENSORBOARD_HINT
            raise CliError(f"profile: {TENSORBOARD_HINT}")
    steps = opts.ops if opts.ops is not None else DEFAULT_OPS_STEPS
    if opts.no_memory and opts.ops is None and not opts.memory_snapshot:
        return None
    from throughput.capture.window import ViewWindow, WindowOptions
    return ViewWindow(WindowOptions(warmup_steps=warmup_steps, steps=steps, ops=opts.ops is not None,
                                    memory=not opts.no_memory, memory_snapshot=opts.memory_snapshot, out_dir=out))


def chain(telemetry: Any, window: Any) -> Any:
    if window is None:
        return telemetry
    from throughput.capture.window import HookChain
    return HookChain(telemetry, window)


def after_report(session: Any, opts: argparse.Namespace, quiet: bool) -> None:
    """Exports beside the report folder, and where to find the files that are not the report."""
    lines = []
    if opts.tensorboard is not None:
        from throughput.cli.tensorboard_out import write_tensorboard
        try:
            lines.append(f"tensorboard: {write_tensorboard(session, opts.tensorboard)} "
                         f"(tensorboard --logdir {opts.tensorboard})")
        except (ImportError, OSError) as e:
            print(f"throughput: error: {e}", file=sys.stderr)
    for artifact in session.artifacts:
        name = Path(artifact).name
        if name.endswith(".speedscope.json"):
            lines.append(f"py-spy flame graph: {artifact} (open at https://www.speedscope.app)")
        elif name.endswith(".pickle"):
            lines.append(f"memory snapshot: {artifact} (open at https://pytorch.org/memory_viz)")
    if not quiet:
        for line in lines:
            print(line, file=sys.stderr)
