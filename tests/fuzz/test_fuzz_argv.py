"""Fuzzing every command's argv: options from each command's real parser, values from a pool of good and
bad ones (negative, zero, NaN, inf, huge, empty, text; files, folders, missing and unwritable paths;
valid and damaged sessions, plans and recipes), in any order, plus stray tokens.

The property (tests/fuzz/mutations.py): exit 0, or exit 2 with one line; never a traceback; nothing
written outside --out. When every argument is accepted the command's real work would start: that work
(a training run, a probe search, a profiled script, the demo) is stubbed to raise ``Reached``, since it
is not the subject here and may legitimately run for hours; report / compare / ranks / advise on a
session run for real. Seeds and example counts are listed in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

from hypothesis import given, seed, settings
from hypothesis import strategies as st

from tests.fuzz.mutations import LIGHT_RECIPE, Reached, check_contract
from tests.fuzz.test_fuzz_files import PLAN_DOC, valid_session
from throughput.capture.distributed import rank_session_paths
from throughput.cli.main import build_parser
from throughput.cli.profile_cmd import options_parser
from throughput.session.io import save_session

ARGV_EXAMPLES = 100        # per command
COMMANDS = ("profile", "report", "compare", "ranks", "advise", "train", "ablate", "demo")
NUMBERS: tuple[str, ...] = ("1", "2", "0", "-1", "-5", "3.5", "1e3", "nan", "inf", "-inf", "1e400", "99999999999999999999999",
           "", "abc", "0x10", " 4 ")
SETTINGS = ("lr=3e-4", "lr=inf", "lr=fast", "steps=2", "steps=-1", "steps=1.5", "amp=bf16", "amp=fp8",
            "nosuchkey=1", "steps", "=1", "num_workers=2", "pin_memory=maybe", "help")
PATH_KINDS = ("session", "bad_session", "folder", "empty_folder", "missing", "below_file", "proc", "script",
              "recipe", "plan", "bad_plan", "report_folder", "out", "out_file", "ranks_run")


def _stub(*args: object, **kwargs: object) -> Any:
    raise Reached


STUBS = ("throughput.loop.loop.run_training", "throughput.loop.ablate.run_ablation", "throughput.demo.run.run_demo",
         "throughput.capture.zerocode.profile_target", "throughput.cli.multirank.launch",
         "throughput.cli.advise_script.run_script_advice", "throughput.cli.advise_recipe.run_recipe_advice")


@contextmanager
def stubbed_work() -> Iterator[None]:
    with ExitStack() as stack:
        for target in STUBS:
            stack.enter_context(mock.patch(target, _stub))
        # --wait-for N makes ranks wait up to --timeout seconds for rank files: no waiting here.
        stack.enter_context(mock.patch("throughput.cli.ranks_cmd.wait_for_rank_sessions",
                                       lambda out, n, timeout: rank_session_paths(out)))
        yield


def _make_paths(root: Path) -> dict[str, Path]:
    """Every kind of path the pool offers, created under ``root``."""
    p = {k: root / k for k in PATH_KINDS}
    save_session(valid_session(), p["session"])
    p["bad_session"].write_text('{"schema": "throughput.session", "schema_version": 1, "steps": [{"index": "x"}]}')
    p["folder"].mkdir()
    save_session(valid_session(), p["folder"] / "session.json")
    p["empty_folder"].mkdir()
    (root / "a_file").write_text("x")
    p["below_file"] = root / "a_file" / "below"
    p["proc"] = Path("/proc/throughput-fuzz")
    p["script"].write_text("print('hi')\n")
    p["script"] = p["script"].rename(root / "script.py")
    p["recipe"] = root / "recipe.py"
    p["recipe"].write_text(LIGHT_RECIPE + "config = {'steps': 3, 'lr': 0.001}\n")
    p["plan"].write_text(json.dumps(PLAN_DOC))
    p["bad_plan"].write_text('{"lr": "fast"')
    p["report_folder"].mkdir()
    save_session(valid_session(), p["report_folder"] / "session.json")
    p["out_file"].write_text("keep")
    for rank in (0, 1):                      # a two-rank run for `ranks` to merge
        save_session(valid_session(), p["ranks_run"] / f"rank-{rank}" / "session.json")
    return p


def P(kind: str) -> st.SearchStrategy[Any]:   # noqa: N802 - a path placeholder, resolved per example
    return st.just(("path", kind))


def _ints(*values: int) -> st.SearchStrategy[str]:
    return st.sampled_from([str(v) for v in values])


FORMATS = st.sampled_from(("table", "md", "json"))
SESSIONS = st.one_of(P("session"), P("folder"), P("report_folder"))
FLAG = st.just(None)   # an option without a value
# command -> (positional strategies, {option: strategy of a valid value (None for flags)})
GRAMMAR: dict[str, tuple[list[st.SearchStrategy[Any]], dict[str, st.SearchStrategy[Any]]]] = {
    "profile": ([], {"--out": P("out"), "--max-steps": _ints(1, 5), "--warmup-steps": _ints(0, 2), "--format": FORMATS,
                     "--quiet": FLAG, "--no-plots": FLAG, "--progress": FLAG,
                     "--set": st.sampled_from(("num_workers=2", "amp=bf16", "tf32=true")),
                     "--pad-id": _ints(0, 3), "--nproc-per-node": _ints(1, 2), "--telemetry-interval": _ints(1),
                     "--no-telemetry": FLAG, "--py-spy": FLAG, "--py-spy-rate": _ints(50), "--count-flops": FLAG,
                     "--flops-per-step": st.just("1e9"), "--dtype": st.sampled_from(("bf16", "fp32")),
                     "--ops": _ints(3), "--memory-snapshot": FLAG, "--no-memory": FLAG, "--tensorboard": P("out")}),
    "report": ([SESSIONS], {"--format": FORMATS, "--warmup-steps": _ints(0, 1, 3)}),
    "compare": ([SESSIONS, SESSIONS], {"--format": FORMATS}),
    "ranks": ([st.one_of(P("ranks_run"), P("ranks_run"), P("folder"), P("empty_folder"))],
              {"--format": FORMATS, "--wait-for": _ints(0, 2), "--timeout": st.just("0.5")}),
    "advise": ([st.one_of(SESSIONS, P("script"))],
               {"--target-global-batch": _ints(8, 64), "--memory-budget": st.just("8GiB"),
                "--time-budget": st.just("30"), "--probe-steps": _ints(1, 3), "--probe-timeout": st.just("60"),
                "--plan-out": st.one_of(P("out_file"), P("out")), "--num-gpus": _ints(1, 8),
                "--checkpoint-save-s": st.just("12.5"), "--mtbf-hours": st.just("24"),
                "--max-lost-work-min": st.just("30"), "--format": st.sampled_from(("text", "json")),
                "--confirm-rounds": _ints(1, 3), "--confirm-window": st.just("0.5")}),
    "train": ([P("recipe")], {"--plan": P("plan"), "--set": st.sampled_from(("lr=3e-4", "steps=2", "amp=bf16")),
                              "--out": P("out"), "--resume": FLAG, "--quiet": FLAG, "--allow-config-change": FLAG,
                              "--max-steps": _ints(1, 5)}),
    "ablate": ([P("recipe")], {"--vary": st.sampled_from(("lr=0.1,0.2", "amp=bf16,fp32")), "--repeats": _ints(1, 2),
                               "--plan": P("plan"), "--set": st.just("steps=2"), "--out": P("out")}),
    "demo": ([], {"--out": P("out"), "--steps": _ints(5, 20), "--time-budget": st.just("10")}),
}
BAD = st.one_of(st.sampled_from(NUMBERS), st.sampled_from(SETTINGS), st.sampled_from(PATH_KINDS).map(lambda k: ("path", k)),
                st.text(max_size=6))


@st.composite
def argv_for(draw: st.DrawFn, command: str) -> list[Any]:
    """A valid-looking command line from GRAMMAR, then 0 to 2 corruptions (a bad value, a stray token,
    a dropped token), so that both accepted and refused inputs are generated. Paths are
    ("path", kind) placeholders, resolved per example once the scratch folder exists."""
    positionals, options = GRAMMAR[command]
    tokens: list[Any] = [draw(p) for p in positionals]
    if command == "profile":
        tokens = [("path", "script"), *draw(st.lists(st.sampled_from(("--lr", "3", "-x")), max_size=2))]
    if command == "advise" and draw(st.booleans()):
        tokens = ["--recipe", ("path", "recipe")]
    for flag in draw(st.lists(st.sampled_from(sorted(options)), max_size=3, unique=True)):
        value = draw(options[flag])
        opts = [flag] if value is None else [flag, value]
        tokens = opts + tokens if command == "profile" or draw(st.booleans()) else tokens + opts
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(("value", "stray", "drop")))
        if tokens and kind in ("value", "drop"):
            i = draw(st.integers(0, len(tokens) - 1))
            if kind == "drop":
                del tokens[i]
            else:
                tokens[i] = draw(BAD)
        else:
            tokens.insert(draw(st.integers(0, len(tokens))), draw(BAD))
    return [command, *tokens]


# Options the grammar leaves out on purpose (each is reached through another path).
NOT_IN_GRAMMAR = {("profile", "-m"), ("advise", "--recipe"), ("advise", "--target-tokens"), ("advise", "--candidates")}


def real_options(command: str) -> set[str]:
    """The option strings of the command's real parser (--help left out)."""
    if command == "profile":
        parser = options_parser()
    else:
        sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[command]
    return {flag for a in parser._actions if not isinstance(a, argparse._HelpAction) for flag in a.option_strings}


def test_the_grammar_covers_every_option_of_every_command() -> None:
    """A new option must be fuzzed too: add it to GRAMMAR with a valid value (or to NOT_IN_GRAMMAR)."""
    for command in COMMANDS:
        missing = real_options(command) - set(GRAMMAR[command][1]) - {f for c, f in NOT_IN_GRAMMAR if c == command}
        assert not missing, f"{command}: options not in tests/fuzz/test_fuzz_argv.py GRAMMAR: {sorted(missing)}"


def _resolve(argv: list[Any], paths: dict[str, Path]) -> list[str]:
    return [str(paths[t[1]]) if isinstance(t, tuple) else t for t in argv]


def _fuzz(argv: list[Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="fuzz-argv-") as name, stubbed_work():
        root = Path(name)
        paths = _make_paths(root)
        resolved = _resolve(argv, paths)
        check_contract(resolved, root, allowed=_out_values(resolved))


def _out_values(argv: list[str]) -> list[Path]:
    """The paths given to --out / --plan-out / --tensorboard (and the run folder `ranks` merges into): the
    only places a command may write."""
    out = [Path(t) for t in argv[1:] if argv[0] == "ranks" and Path(t).is_dir()]
    for i, token in enumerate(argv):
        for flag in ("--out", "--plan-out", "--tensorboard"):
            if token == flag and i + 1 < len(argv):
                out.append(Path(argv[i + 1]))
            elif token.startswith(flag + "="):
                out.append(Path(token.split("=", 1)[1]))
    return out


@seed(1301)
@settings(max_examples=ARGV_EXAMPLES)
@given(argv=argv_for("profile"))
def test_profile_argv(argv: list[Any]) -> None:
    _fuzz(argv)


@seed(1302)
@settings(max_examples=ARGV_EXAMPLES)
@given(argv=st.sampled_from(("report", "compare", "ranks")).flatmap(argv_for))
def test_report_compare_ranks_argv(argv: list[Any]) -> None:
    _fuzz(argv)


@seed(1303)
@settings(max_examples=ARGV_EXAMPLES)
@given(argv=argv_for("advise"))
def test_advise_argv(argv: list[Any]) -> None:
    _fuzz(argv)


@seed(1304)
@settings(max_examples=ARGV_EXAMPLES)
@given(argv=st.sampled_from(("train", "ablate", "demo")).flatmap(argv_for))
def test_train_ablate_demo_argv(argv: list[Any]) -> None:
    _fuzz(argv)
