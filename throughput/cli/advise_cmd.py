"""``throughput advise``: ranked, measured recommendations and a tuned plan.

- ``throughput advise RUN.json``: rules on a saved session; runs no code.
- ``throughput advise script.py [args]``: profiles the script briefly, then probes it with overrides.
- ``throughput advise --recipe recipe.py``: probes a training-loop recipe in this process.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

from throughput.advisor.apply import TargetRef
from throughput.cli.args import existing_file, output_file, positive_int, positive_number
from throughput.cli.errors import CliError

_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6, "mib": 2**20,
          "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12, "tib": 2**40}


def parse_bytes(text: str) -> int:
    """'8GiB', '512MiB', '1.5g', '1000000' -> bytes (an argparse type: ArgumentTypeError with the forms)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"cannot read memory size {text!r}: use e.g. 8GiB, 512MiB or a "
                                         "number of bytes")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not 1 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"memory size must be between 1 byte and 8 EiB, got {text!r}")
    return int(value)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("advise", help="measured recommendations and a tuned plan (saved session, script or recipe)",
                       description=__doc__)
    p.add_argument("target", nargs="?", help="a saved session (.json or its report folder) or a script.py")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script")
    p.add_argument("--recipe", type=existing_file, help="a training-loop recipe (build_model, build_datasets, loss_fn)")
    p.add_argument("--target-global-batch", type=positive_int, help="samples per optimizer step to reach")
    p.add_argument("--target-tokens", type=positive_int, help="tokens per optimizer step to reach (instead of samples)")
    p.add_argument("--memory-budget", type=parse_bytes, help="peak memory a configuration may use (e.g. 20GiB)")
    p.add_argument("--time-budget", type=positive_number, help="seconds of probing after which no new knob is tried")
    p.add_argument("--probe-steps", type=positive_int, default=3, help="measured optimizer steps per probe")
    p.add_argument("--probe-timeout", type=positive_number, default=300.0, help="seconds before a script probe is killed")
    p.add_argument("--plan-out", type=output_file, help="write the tuned plan (JSON) here")
    p.add_argument("--candidates", default="", help="extra on/off knobs to A/B at the end, comma-separated "
                   "(recipe mode: compile)")
    p.add_argument("--format", choices=("text", "json"), default=None,
                   help='text (default) or json: {"recommendations": [...], "plan": {...}, "notes": [...]}')
    p.add_argument("--confirm-rounds", type=positive_int, default=None,
                   help="interleaved rounds measuring each change alone against the unchanged run (default 3)")
    p.add_argument("--confirm-window", type=positive_number, default=None,
                   help="seconds of steady steps each confirmation run measures at least (default 2)")
    p.add_argument("--num-gpus", type=positive_int, help="GPUs of the real job, for the checkpoint cadence (default: world size)")
    p.add_argument("--checkpoint-save-s", type=positive_number, help="seconds one checkpoint takes (default: measured)")
    p.add_argument("--mtbf-hours", type=positive_number, help="mean time between failures of the job (default: from GPUs)")
    p.add_argument("--max-lost-work-min", type=positive_number, help="at most this much compute lost per failure (minutes)")
    p.set_defaults(handler=run, options_parser=p)


def _merge_trailing_options(args: argparse.Namespace) -> None:
    """Options after a session file land in ``args.args`` (the script's arguments): parse them as ours."""
    if not args.target or Path(args.target).suffix == ".py" or not args.args:
        return
    extra = args.options_parser.parse_args(args.args)
    if extra.target is not None:
        raise CliError(f"unexpected argument {extra.target!r} after the session file")
    for key, value in vars(extra).items():
        if value is not None and key not in ("target", "args", "handler", "options_parser", "probe_steps",
                                             "probe_timeout", "confirm_rounds", "confirm_window"):
            setattr(args, key, value)
    args.args = []


def run(args: argparse.Namespace) -> int:
    _merge_trailing_options(args)
    args.started = time.perf_counter()        # --time-budget counts from here (search and confirmation)
    args.format = args.format or "text"
    args.confirm_rounds = 3 if args.confirm_rounds is None else args.confirm_rounds
    args.confirm_window = 2.0 if args.confirm_window is None else args.confirm_window
    if args.target_global_batch and args.target_tokens:
        raise CliError("give --target-global-batch (samples) or --target-tokens, not both")
    if args.recipe is not None:
        from throughput.cli.advise_recipe import run_recipe_advice
        return run_recipe_advice(args)
    if not args.target:
        raise CliError("nothing to advise on: pass a session .json, a script.py, or --recipe recipe.py")
    path = Path(args.target)
    if path.suffix == ".py":
        from throughput.cli.advise_script import run_script_advice
        return run_script_advice(args)
    return advise_session(args, path)


def advise_session(args: argparse.Namespace, path: Path) -> int:
    """Rules only, on a saved session: no code of the user's runs."""
    from throughput.advisor.rules import MTBF_NOTE, apply_rules, cadence_finding, precision_notes, rule_input
    from throughput.cli.advise_output import emit
    from throughput.session.io import SessionFormatError, load_session
    from throughput.thresholds import REPORTABLE_GAIN

    try:
        session = load_session(path)
    except SessionFormatError as e:
        raise CliError(str(e)) from None
    x = rule_input(session)
    findings = [f for f in apply_rules(x) if f.expected_gain is None or f.expected_gain >= REPORTABLE_GAIN]
    mtbf = args.mtbf_hours * 3600 if args.mtbf_hours else None
    extra = cadence_finding(x, num_gpus=args.num_gpus, delta_s=args.checkpoint_save_s, mtbf_s=mtbf,
                            max_lost_work_s=args.max_lost_work_min * 60 if args.max_lost_work_min else None)
    notes = list(precision_notes(x))
    if extra is not None:
        findings = [f for f in findings if f.rule_id != extra.rule_id] + [extra]
    elif mtbf is None and x.summary.device != "cuda" and (x.checkpoint_spans_s or args.checkpoint_save_s):
        notes.append(MTBF_NOTE)
    s = x.summary
    header = [f"advice for {path} ({s.device_name}, {s.steps_total} steps, verdict: {s.verdict.headline}); "
              "rules on the saved profile only, no probes run"]
    return emit(args, findings, _session_target(session), header, [*notes, *s.notes],
                keep_off=() if x.checkpoint_spans_s else ("ckpt_every_steps",))


def _session_target(session: object) -> "TargetRef | None":
    """The script the session profiled (its argv), so that advice prints the command that applies it."""
    argv = tuple(getattr(getattr(session, "info", None), "argv", ()) or ())
    if argv and argv[0].endswith(".py"):
        return TargetRef(kind="script", path=argv[0], args=argv[1:])
    return None
