"""``throughput profile [options] script.py [args...]`` / ``-m module [args...]``: zero-code profiling.

Everything after the script (or ``-m module``) belongs to the script, so options are split off by
hand before argparse sees them. The report goes to stderr so the script's stdout stays unchanged.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from throughput.cli.args import (Parser, check_fresh_folder, key_value, nonnegative_int, output_folder,
                                  positive_int, positive_number)
from throughput.cli.errors import CliError
from throughput.cli.views_opts import add_view_options, after_report, build_window, chain, takes_value
from throughput.report import RENDERERS

_VALUE_OPTIONS = ("--out", "--max-steps", "--warmup-steps", "--format", "--set", "--pad-id", "--nproc-per-node",
                  "--telemetry-interval", "--py-spy-rate", "--flops-per-step", "--dtype", "--tensorboard")
USAGE = "throughput profile [options] script.py [args...]  |  throughput profile [options] -m module [args...]"


def options_parser() -> argparse.ArgumentParser:
    p = Parser(prog="throughput profile", usage=USAGE, description=(
        "Run a training script exactly as `python` would, with zero-code instrumentation, and write "
        "the per-step breakdown, throughput, verdict and findings to a report folder."))
    p.add_argument("--out", type=output_folder, default=None,
                   help="report folder (default: reports/<script>-<timestamp>/)")
    p.add_argument("--max-steps", type=positive_int, default=None, help="stop cleanly after N steps and report")
    p.add_argument("--warmup-steps", type=nonnegative_int, default=None, help="leading steps excluded (default 2)")
    p.add_argument("--format", choices=sorted(RENDERERS), default="table", help="report printed to stderr")
    p.add_argument("--quiet", action="store_true", help="print nothing but the script's own output")
    p.add_argument("--no-plots", action="store_true",
                   help="write the report folder without its PNG plots (faster; the advisor's probes use it)")
    p.add_argument("--progress", action="store_true",
                   help="show the live status line on stderr even when it is not a terminal "
                        "(default: shown on a terminal only)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", type=key_value,
                   help="override the recipe without editing it (throughput/knobs.py): micro_batch_size "
                        "(alias batch_size), num_workers, pin_memory, persistent_workers, prefetch_factor "
                        "(DataLoader), amp=bf16|fp16|fp32 (autocast), tf32=true|false, malloc_threshold_bytes=N")
    p.add_argument("--pad-id", type=nonnegative_int, default=None, help="token id counted as padding (no attention_mask)")
    p.add_argument("-m", dest="module", default=None, metavar="MODULE", help="run a module, like python -m")
    _telemetry_options(p)
    add_view_options(p)
    return p


def _telemetry_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nproc-per-node", type=positive_int, default=None, metavar="N",
                   help="launch N ranks through torch.distributed.run; each writes OUT/rank-<r>/, merged into "
                        "OUT/ranks.md (see docs/distributed.md)")
    p.add_argument("--telemetry-interval", type=positive_number, default=0.5, metavar="S",
                   help="seconds between GPU (NVML) and host (CPU%%, RSS) samples")
    p.add_argument("--no-telemetry", action="store_true", help="no GPU/host sampling threads")
    p.add_argument("--py-spy", action="store_true",
                   help="sample the process tree with py-spy; the speedscope profile stays in the report folder")
    p.add_argument("--py-spy-rate", type=positive_int, default=100, metavar="HZ", help="py-spy samples per second")
    p.add_argument("--flops-per-step", type=positive_number, default=None, metavar="F",
                   help="FLOPs of one training step, for MFU (count them with throughput.telemetry.flops.count_flops)")
    p.add_argument("--count-flops", action="store_true",
                   help="count one step's FLOPs with FlopCounterMode (the last warm-up step), for MFU")
    p.add_argument("--dtype", choices=("bf16", "fp16", "tf32", "fp32"), default="fp32",
                   help="the compute dtype, for the MFU peak")


def add_parser(sub: Any) -> None:
    # The script's own options must reach it untouched: no prefix chars here, parsing happens in run().
    p = sub.add_parser("profile", help="profile an unmodified training script (zero code changes)",
                       add_help=False, prefix_chars="\0", usage=USAGE)
    # REMAINDER, not "*": argparse drops the first "--" from a "*" list, which is the script's to keep
    p.add_argument("argv", nargs=argparse.REMAINDER, help="[options] script.py [args...] (see `throughput profile --help`)")
    p.set_defaults(handler=run)


def split_argv(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(our options, [script, *script args]). ``-m MODULE`` stays in our options and ends them."""
    ours: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            return ours, list(argv[i + 1:])
        if token == "-m" or (token.startswith("-m") and not token.startswith("--")):
            module = argv[i + 1] if token == "-m" and i + 1 < len(argv) else token[2:]
            if not module:
                raise CliError("profile: -m needs a module name, e.g. `throughput profile -m mypkg.train`")
            return ours + ["-m", module], list(argv[i + (2 if token == "-m" else 1):])
        if not token.startswith("-") or token == "-":
            return ours, list(argv[i:])
        ours.append(token)
        if (token in _VALUE_OPTIONS and i + 1 < len(argv)) or takes_value(token, argv[i + 1] if i + 1 < len(argv) else None):
            ours.append(argv[i + 1])
            i += 1
        i += 1
    return ours, []


def run(args: argparse.Namespace) -> int:
    from throughput.capture.overrides import launch_env, overrides_from, parse_set
    from throughput.capture.runner import Target, TargetError, check_target
    ours, rest = split_argv(args.argv)
    opts = options_parser().parse_args(ours)
    if opts.module is not None:
        target = Target(module=opts.module, args=tuple(rest))
    elif rest and rest[0].strip():
        target = Target(path=rest[0], args=tuple(rest[1:]))
    else:
        raise CliError("profile: no script given; usage: " + USAGE)
    try:  # all of this before torch is imported, so bad input fails fast
        values = parse_set(opts.overrides)
        overrides = overrides_from(values)
        check_target(target)
    except (ValueError, TargetError) as e:
        raise CliError(f"profile: {e}") from None
    _relaunch_with_env(launch_env(values), args.argv)
    # absolute now: a script that changes directory (Hydra's job.chdir) must not move the report
    made: list[Path] = []
    base_out = Path(opts.out).absolute() if opts.out else _default_out(target.stem, made)
    pid = os.getpid()
    try:
        return _profile(target, opts, ours, rest, overrides, base_out, pid)
    finally:
        if os.getpid() == pid:   # folders made for a default report that the run never wrote
            _remove_if_empty(made)


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (innermost first) that are still empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:   # not empty (the report), or gone
            return


def _profile(target: Any, opts: argparse.Namespace, ours: list[str], rest: list[str], overrides: Any,
             base_out: Path, pid: int) -> int:
    """Run ``target`` under the hooks and write its report to ``base_out`` (or its rank's folder); ``pid``
    is this process's (a child the script forks returns through here too, and writes nothing)."""
    from throughput.capture.runner import exit_by_signal, prepare_exit_by_signal
    from throughput.cli import multirank
    if opts.nproc_per_node is not None:
        check_fresh_folder(base_out)
        return multirank.launch(opts.nproc_per_node, ours, rest, base_out, quiet=opts.quiet)
    out = multirank.rank_out(base_out)
    check_fresh_folder(out)   # before the run: a finished run must not lose its report at the end
    from throughput.capture.zerocode import ProfileOptions, profile_target
    from throughput.capture.profiler import DEFAULT_WARMUP_STEPS
    window = build_window(opts, out, DEFAULT_WARMUP_STEPS if opts.warmup_steps is None else opts.warmup_steps)
    quiet = opts.quiet or multirank.is_quiet_rank()
    progress = False if quiet else (True if opts.progress else None)
    options = ProfileOptions(max_steps=opts.max_steps, overrides=overrides, pad_id=opts.pad_id,
                             telemetry=chain(_telemetry(opts, out), window), progress=progress,
                             **({} if opts.warmup_steps is None else {"warmup_steps": opts.warmup_steps}))
    prepare_exit_by_signal()
    from throughput.cli.interrupts import FinishFirst
    from throughput.report import plot_server
    if not opts.no_plots:
        plot_server.prestart()   # matplotlib imports while the script trains (report/plot_server.py)
    guard = FinishFirst(what="the report")   # armed the moment the script's code ends (runner.run)

    def finish(session: Any, result: Any) -> bool:
        """Everything after the script: the report, the advice lines, the ranks' merge. False when a
        second Ctrl-C aborted the report (what was written is kept)."""
        if not _report(session, out, opts.format, quiet, guard, plots=not opts.no_plots):
            return False
        plot_server.discard()
        after_report(session, opts, quiet)
        multirank.after_rank(base_out, quiet=opts.quiet)
        return True

    try:   # on SIGTERM, finish runs from inside the stopped script, and the process then dies by it
        session, result = profile_target(target, options, script_ended=guard.arm, terminated=finish)
        if os.getpid() != pid:   # a child the script forked (os.fork) left through sys.exit: no report
            return int(result.exit_code)
        if not finish(session, result):
            return 130
    except KeyboardInterrupt:
        if not guard.interrupted:   # before the script started: the caller says "interrupted"
            raise
        _say_aborted(out)
        return 130
    finally:
        guard.disarm()
        plot_server.discard()   # not taken: no steps to plot, or the report failed first
    if result.signal is not None:
        exit_by_signal(result.signal)
    return int(result.exit_code)


def _relaunch_with_env(env: dict[str, str], argv: Sequence[str]) -> None:
    """Knobs read once at process start (glibc's malloc tunables, ``--set malloc_threshold_bytes``):
    start this same command again with them in the environment. Returns when they are already set."""
    import os
    if not env or all(os.environ.get(k) == v for k, v in env.items()):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "throughput", "profile", *argv], {**os.environ, **env})


def _report(session: Any, out: Path, fmt: str, quiet: bool, guard: Any, plots: bool = True) -> bool:
    """Write the report folder (with the PNG plots unless ``plots`` is False) and print the summary,
    under ``guard`` (a FinishFirst). False when a second Ctrl-C aborted it."""
    from throughput.analysis.summary import summarize
    from throughput.report.folder import write_report
    _say(quiet, f"throughput: writing report to {out}/ ...")
    t0 = time.perf_counter()
    with guard:
        try:
            summary = summarize(session)
            folder = write_report(session, out, summary, plots=plots)
        except KeyboardInterrupt:
            _say_aborted(out)
            return False
        except OSError as e:
            print(f"throughput: error: could not write the report to {out}: {e}", file=sys.stderr)
            return True
        _say(quiet, f"throughput: report written in {time.perf_counter() - t0:.1f} s"
             + (" (finished after Ctrl-C)" if guard.interrupted else ""))
    if not quiet:
        _say(quiet, "\n" + RENDERERS[fmt](summary).rstrip("\n"))
        _say(quiet, f"report: {folder}/report.md")
    return True


def _say_aborted(out: Path) -> None:
    """After a second Ctrl-C: what of the report folder is there (each file is written whole)."""
    kept = sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) if out.is_dir() else []
    print(f"throughput: report aborted; kept in {out}: {', '.join(kept) or 'nothing'}", file=sys.stderr)


def _say(quiet: bool, line: str) -> None:
    if quiet:
        return
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # the script closed or broke stderr: the folder has the report
        pass


def _default_out(stem: str, made: list[Path]) -> Path:
    """reports/<script>-<time> (absolute), created now so that another run started in the same second
    takes -2, -3, ... instead of writing over this one's report at the end; the folders created are
    appended to ``made`` (outermost first). Under torchrun every rank takes the launcher's folder (each
    writes its own rank-N/ in it)."""
    import os
    base = (Path("reports") / f"{stem}-{_run_name()}").absolute()
    if os.environ.get("TORCHELASTIC_RUN_ID"):
        return base
    try:
        made += _make_parents(base.parent)
    except OSError:
        return base   # check_fresh_folder says why it cannot be written, in one line
    for n in range(1, 10_000):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        except OSError:
            return candidate
        made.append(candidate)
        return candidate
    raise CliError(f"profile: no free report folder name beside {base}; pass --out")


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, outermost first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    for p in missing:
        p.mkdir(exist_ok=True)
    return missing


def _run_name() -> str:
    # Under torchrun every rank must pick the same folder: use the launcher's run id when there is one.
    import os
    return os.environ.get("TORCHELASTIC_RUN_ID") or time.strftime("%Y%m%d-%H%M%S")


def _telemetry(opts: argparse.Namespace, out: Path) -> Any:
    if opts.count_flops and opts.flops_per_step is not None:
        raise CliError("profile: give either --flops-per-step or --count-flops, not both")
    if opts.no_telemetry and not opts.py_spy and not opts.count_flops and opts.flops_per_step is None:
        return None
    from throughput.capture.profiler import DEFAULT_WARMUP_STEPS
    from throughput.telemetry import TelemetryController
    warmup = DEFAULT_WARMUP_STEPS if opts.warmup_steps is None else opts.warmup_steps
    return TelemetryController(interval_s=opts.telemetry_interval, nvml=not opts.no_telemetry,
                               host=not opts.no_telemetry, py_spy_dir=out if opts.py_spy else None,
                               py_spy_rate=opts.py_spy_rate, dtype=opts.dtype, flops_per_step=opts.flops_per_step,
                               count_flops_at_step=max(0, warmup - 1) if opts.count_flops else None)

