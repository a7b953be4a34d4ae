"""Every bad input the issue listed (each was a traceback or silently accepted) is one line and exit 2.

In-process (``main(argv)``, stderr captured) for speed; ``test_real_process_*`` run a few through
``python -m throughput`` to check the process itself prints no traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.profile_helpers import DATA, _env
from tests.helpers import make_session
from tests.loop.helpers import MICRO_GPT
from throughput.cli.main import main
from throughput.session.io import save_session, session_to_dict


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("throughput: error: "), err
    assert "Traceback" not in err
    return err.rstrip("\n")


def _session_with(tmp_path: Path, field: str, value: object) -> Path:
    raw = session_to_dict(make_session(n_steps=3, forward=0.5, backward=1.0, samples=4))
    raw["steps"][1][field] = value if field != "phase_s" else {"forward": value}
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(raw))
    return path


WRONG_TYPED = [
    ("phase_s", "fast", 'steps[1].phase_s.forward: expected a number, got "fast"'),
    ("end_s", None, "steps[1].end_s: expected a number, got null"),
    ("loss", "NaN", 'steps[1].loss: expected a number or null, got "NaN"'),
]


@pytest.mark.parametrize("command", ["report", "compare", "advise"])
@pytest.mark.parametrize("field, value, message", WRONG_TYPED, ids=[w[0] for w in WRONG_TYPED])
def test_wrong_typed_session_names_the_field(command: str, field: str, value: object, message: str,
                                             tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _session_with(tmp_path, field, value)
    good = save_session(make_session(n_steps=3, forward=0.5), tmp_path / "good.json")
    argv = [command, str(path)] + ([str(good)] if command == "compare" else [])
    assert main(argv) == 2
    assert _one_line(capsys) == f"throughput: error: {path}: {message}"


@pytest.fixture()
def session_file(tmp_path: Path) -> Path:
    return save_session(make_session(n_steps=4, data=0.3, forward=0.3, backward=0.3, samples=8),
                        tmp_path / "run.json")


@pytest.mark.parametrize("options, message", [
    (["--mtbf-hours", "-1"], "advise: argument --mtbf-hours: must be > 0, got -1"),
    (["--max-lost-work-min", "-1"], "advise: argument --max-lost-work-min: must be > 0, got -1"),
    (["--checkpoint-save-s", "nan"], "advise: argument --checkpoint-save-s: expected a finite number > 0, got 'nan'"),
    (["--checkpoint-save-s", "inf"], "advise: argument --checkpoint-save-s: expected a finite number > 0, got 'inf'"),
    (["--num-gpus", "0"], "advise: argument --num-gpus: must be >= 1, got 0"),
    (["--memory-budget", "lots"], "advise: argument --memory-budget: cannot read memory size 'lots'"),
    (["--memory-budget=-5GiB"], "advise: argument --memory-budget: cannot read memory size '-5GiB'"),
])
@pytest.mark.parametrize("where", ["before", "after"])
def test_advise_numbers_are_checked_before_and_after_the_session(
        options: list[str], message: str, where: str, session_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["advise", *options, str(session_file)] if where == "before" else ["advise", str(session_file), *options]
    assert main(argv) == 2
    line = _one_line(capsys)
    assert line.startswith(f"throughput: error: {message}") and line.endswith("(see `throughput advise --help`)")


def test_advise_mtbf_alone_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["advise", "--mtbf-hours", "-1"]) == 2      # was accepted without error
    assert "argument --mtbf-hours: must be > 0, got -1" in _one_line(capsys)


def test_advise_plan_out_a_folder(session_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "somedir"
    folder.mkdir()
    assert main(["advise", str(session_file), "--plan-out", str(folder)]) == 2
    assert f"argument --plan-out: {folder} is a folder; pass a file name, e.g. {folder / 'plan.json'}" in \
        _one_line(capsys)
    assert list(folder.iterdir()) == []


def test_profile_negative_flops(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--flops-per-step", "-5", str(DATA / "trains_nothing.py")]) == 2
    assert "profile: argument --flops-per-step: must be > 0, got -5" in _one_line(capsys)


def _unwritable(tmp_path: Path) -> list[Path]:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    paths = [blocker / "out"]                            # below a file: no user can create it
    if Path("/proc/self").exists():
        paths.append(Path("/proc/throughput-out"))       # a pseudo file system: refuses even root
    return paths


def test_train_out_an_existing_file_or_unwritable_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "existing_file"
    existing.write_text("keep me")
    assert main(["train", str(MICRO_GPT), "--out", str(existing)]) == 2
    assert f"argument --out: {existing} is an existing file, not a folder" in _one_line(capsys)
    assert existing.read_text() == "keep me"
    for path in _unwritable(tmp_path):
        assert main(["train", str(MICRO_GPT), "--out", str(path)]) == 2
        line = _one_line(capsys)
        assert "train: argument --out: " in line and ("cannot write under" in line or "cannot create" in line), line


@pytest.mark.parametrize("command", ["profile", "ablate", "demo"])
def test_every_out_option_refuses_a_file_and_an_unwritable_path(command: str, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "existing_file"
    existing.write_text("keep me")
    tail = {"profile": [str(DATA / "trains_nothing.py")], "ablate": [str(MICRO_GPT), "--vary", "lr=0.1"],
            "demo": []}[command]
    for out in [existing, *_unwritable(tmp_path)]:
        argv = [command, "--out", str(out), *tail] if command == "profile" else [command, *tail, "--out", str(out)]
        assert main(argv) == 2
        assert f"{command}: argument --out: " in _one_line(capsys)
    assert existing.read_text() == "keep me"


def test_set_lr_inf_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(MICRO_GPT), "--set", "lr=inf", "--out", str(tmp_path / "o")]) == 2
    assert _one_line(capsys) == "throughput: error: lr must be a finite number, got inf"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["report", "compare", "ranks", "advise", "train", "ablate"])
def test_usage_errors_are_one_line_not_a_usage_block(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--no-such-option"]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"throughput: error: {command}: ") and "usage:" not in line
    assert line.endswith(f"(see `throughput {command} --help`)")


@pytest.mark.parametrize("command", ["", "profile", "report", "compare", "ranks", "advise", "train", "ablate",
                                     "demo"])
def test_help_still_prints_the_usage_and_exits_0(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"] if command else ["--help"])
    out = capsys.readouterr()
    assert exit_info.value.code == 0 and out.out.startswith("usage: throughput") and out.err == ""


@pytest.mark.parametrize("left", ["session.json", "trace.json", "steps.jsonl"])
def test_profile_out_holding_another_report_fails_before_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 left: str) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / left).write_text("{}")   # any file of a report (a folder left with only its trace, too)
    script = tmp_path / "side_effect.py"
    script.write_text(f"open({str(tmp_path / 'ran')!r}, 'w').write('ran')\n")
    assert main(["profile", "--out", str(out), str(script)]) == 2
    assert f"--out {out} already holds another run's report ({left})" in _one_line(capsys)
    assert not (tmp_path / "ran").exists()                # the script never started


def test_demo_never_replaces_a_folder_it_did_not_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    assert main(["demo", "--out", str(out)]) == 2
    assert "holds files the demo did not write (thesis.tex)" in _one_line(capsys)
    assert (out / "thesis.tex").read_text() == "years of work"


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "throughput", *argv], capture_output=True, text=True,
                          env=_env(), cwd=cwd, timeout=120)


def test_real_process_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    bad = _session_with(tmp_path, "phase_s", "fast")
    for argv in (["report", str(bad)], ["advise", "--mtbf-hours", "-1"], ["train", "--bogus"],
                 ["profile", "--flops-per-step", "-5", "x.py"]):
        proc = _run(*argv, cwd=tmp_path)
        assert proc.returncode == 2 and proc.stdout == "", (argv, proc.stderr)
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("throughput: error: "), (argv, proc.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edited.json"]   # nothing written

