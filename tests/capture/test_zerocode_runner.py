"""The runner runs scripts like python does (in-process here; the CLI tests cover real processes)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from throughput.capture.runner import Target, TargetError, check_target, run
from throughput.session.records import RunEnd

SHOW = """import json, os, sys
print(json.dumps({"argv": sys.argv, "name": __name__, "file": __file__, "path0": sys.path[0],
                  "cwd": os.getcwd(), "main": sys.modules["__main__"].__dict__ is globals(),
                  "builtins_module": type(__builtins__).__name__}))
"""


def test_script_sees_what_python_gives_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "show.py"
    script.write_text(SHOW)
    argv, path0, main = list(sys.argv), sys.path[0], sys.modules["__main__"]
    result = run(Target(path=str(script), args=("--lr", "3e-4")))
    seen = json.loads(capsys.readouterr().out)
    assert result.end is RunEnd.COMPLETED and result.exit_code == 0
    assert seen == {"argv": [str(script), "--lr", "3e-4"], "name": "__main__", "file": str(script),
                    "path0": str(tmp_path.resolve()), "cwd": os.getcwd(), "main": True,
                    "builtins_module": "module"}   # as in python's own __main__
    assert sys.argv == argv and sys.path[0] == path0 and sys.modules["__main__"] is main  # restored


@pytest.mark.parametrize("given", ["./show.py", "link/show.py", "show.py"])
def test_the_script_s_file_and_path_are_python_s_for_relative_and_linked_paths(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    """``__file__`` is the path as given, made absolute without normalising (``./`` kept, a link not
    resolved), and ``sys.path[0]`` the script's real folder: compared with a real python process."""
    import subprocess
    real = tmp_path / "real"
    real.mkdir()
    (real / "show.py").write_text(SHOW)
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    cwd = tmp_path if given.startswith("link") else real
    plain = json.loads(subprocess.run([sys.executable, given], cwd=cwd, capture_output=True, text=True,
                                      check=True).stdout)
    monkeypatch.chdir(cwd)
    run(Target(path=given))
    seen = json.loads(capsys.readouterr().out)
    assert (seen["file"], seen["path0"], seen["argv"]) == (plain["file"], plain["path0"], plain["argv"])


FOLDER_SHOW = """import json, sys
print(json.dumps({"spec": [__spec__.name, __spec__.origin, __spec__.parent] if __spec__ else None,
                  "package": __package__, "cached": __cached__, "file": __file__, "path0": sys.path[0],
                  "loader": [type(__loader__).__name__, __loader__.name, __loader__.path], "argv": sys.argv}))
"""


def test_a_folder_s_main_sees_what_python_gives_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``python app/`` imports app/__main__.py from sys.path[0]: it has a spec, package "" and a cached
    path (the script file's ``python app/__main__.py`` has none): compared with a real python process."""
    import subprocess
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__main__.py").write_text(FOLDER_SHOW)
    plain = json.loads(subprocess.run([sys.executable, "app", "x"], cwd=tmp_path, capture_output=True, text=True,
                                      check=True).stdout)
    monkeypatch.chdir(tmp_path)
    run(Target(path="app", args=("x",)))
    assert json.loads(capsys.readouterr().out) == plain
    assert plain["spec"] is not None and plain["package"] == ""


def test_module_runs_like_python_dash_m(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "zc_pkg_show"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "train.py").write_text(SHOW)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run(Target(module="zc_pkg_show.train", args=("x",)))
    seen = json.loads(capsys.readouterr().out)
    assert result.exit_code == 0
    assert seen["argv"] == [str(pkg / "train.py"), "x"] and seen["name"] == "__main__"


@pytest.mark.parametrize("body, code, end", [
    ("import sys; sys.exit(4)", 4, RunEnd.SYSTEM_EXIT),
    ("import sys; sys.exit()", 0, RunEnd.SYSTEM_EXIT),
    ("import sys; sys.exit('bye')", 1, RunEnd.SYSTEM_EXIT),
    ("raise KeyError('k')", 1, RunEnd.EXCEPTION),
    ("x = (", 1, RunEnd.EXCEPTION),
])
def test_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, code: int,
                    end: RunEnd) -> None:
    script = tmp_path / "s.py"
    script.write_text(body + "\n")
    result = run(Target(path=str(script)))
    assert (result.exit_code, result.end) == (code, end)
    err = capsys.readouterr().err
    if body.startswith("raise"):
        assert err.startswith("Traceback (most recent call last):\n") and err.endswith("KeyError: 'k'\n")
        assert "runner.py" not in err and "runpy" not in err      # only the script's frames
    if "bye" in body:
        assert err == "bye\n"                                     # python prints a non-integer code


def test_script_ended_comes_before_the_traceback_is_printed(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The caller arms its Ctrl-C guard in ``script_ended``: it must run before anything of ours does
    (printing a traceback, building the report), or a Ctrl-C there loses the report."""
    script = tmp_path / "raises.py"
    script.write_text("raise ValueError('late')\n")
    seen: list[str] = []
    result = run(Target(path=str(script)), script_ended=lambda: seen.append(capsys.readouterr().err))
    assert seen == [""] and "ValueError: late" in capsys.readouterr().err
    assert result.end is RunEnd.EXCEPTION and result.detail == "ValueError: late"


def test_an_exception_whose_str_fails_is_reported_like_python(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "bad_str.py"
    script.write_text("class E(Exception):\n    def __str__(self):\n        raise ValueError('nope')\nraise E()\n")
    result = run(Target(path=str(script)))
    assert capsys.readouterr().err.splitlines()[-1] == "E: <exception str() failed>"   # python's own line
    assert result.exit_code == 1 and result.detail == "E: <exception str() failed>"


def test_keyboard_interrupt_asks_to_exit_by_sigint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "s.py"
    script.write_text("raise KeyboardInterrupt\n")
    result = run(Target(path=str(script)))
    assert result.end is RunEnd.INTERRUPTED and result.exit_code == 130 and result.signal == 2
    assert capsys.readouterr().err.endswith("KeyboardInterrupt\n")


def test_an_exception_raised_where_no_line_number_is_known_prints_like_python(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A traceback entry whose tb_lineno is None (Python 3.11+: an instruction without a line, as where a
    # Ctrl-C can land): code with an empty line table raises, called from the script.
    script = tmp_path / "s.py"
    script.write_text("code = compile('raise ValueError(\\'no line\\')', '<nolines>', 'exec')\n"
                      "exec(code.replace(co_linetable=b''), {})\n")
    result = run(Target(path=str(script)))
    err = capsys.readouterr().err
    assert result.end is RunEnd.EXCEPTION and result.exit_code == 1
    assert err.startswith("Traceback (most recent call last):\n") and err.endswith("ValueError: no line\n")
    assert 'File "<nolines>"' in err and "throughput" not in err and "TypeError" not in err


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.py", "no such file"),
    (lambda d: d, "is a directory"),
    (lambda d: d / "notes.txt", "is not a Python script"),
])
def test_bad_targets(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(TargetError, match=message):
        check_target(Target(path=str(make(tmp_path))))


def test_folder_with_main_and_shebang_script_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "__main__.py").write_text("")
    check_target(Target(path=str(tmp_path)))
    tool = tmp_path / "train"
    tool.write_text("#!/usr/bin/env python3\nprint(1)\n")
    check_target(Target(path=str(tool)))
