"""Pieces of the profile command's multi-rank wiring that need no launcher."""

from __future__ import annotations

from pathlib import Path

import pytest

from throughput.cli.multirank import after_rank, is_quiet_rank, rank_out, strip_option


def test_strip_option() -> None:
    argv = ["--out", "o", "--max-steps", "5", "--out=p", "--quiet"]
    assert strip_option(argv, "--out") == ["--max-steps", "5", "--quiet"]
    assert strip_option(argv, "--quiet", takes_value=False) == ["--out", "o", "--max-steps", "5", "--out=p"]


def test_rank_folders_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert rank_out(tmp_path) == tmp_path and not is_quiet_rank()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert rank_out(tmp_path) == tmp_path / "rank-1" and is_quiet_rank()
    after_rank(tmp_path)   # rank 1 never merges: returns at once, writes nothing
    assert not (tmp_path / "ranks.md").exists()


def test_rank0_merges_once_all_sessions_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers import make_steps
    from throughput.session.io import save_session
    from throughput.session.records import RunInfo
    from throughput.session.session import Session
    for rank, data_s in ((0, 0.01), (1, 0.05)):
        info = RunInfo(run_id=f"r{rank}", rank=rank, world_size=2, warmup_steps=0)
        steps = make_steps([{"data": data_s, "forward": 0.02, "backward": 0.06 - data_s}] * 3)
        save_session(Session(info=info, steps=steps), tmp_path / f"rank-{rank}" / "session.json")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("THROUGHPUT_PARENT_MERGES", raising=False)
    after_rank(tmp_path)
    # data: median(0.01, 0.05) = 0.03, rank 1 exceeds it by 0.02 s (> 5% of the 0.08 s step)
    assert "straggler: rank 1, phase 'data'" in (tmp_path / "ranks.md").read_text()
    assert "merged report:" in capsys.readouterr().err
    (tmp_path / "ranks.md").unlink()
    after_rank(tmp_path, quiet=True)          # --quiet: merged all the same, nothing printed
    assert (tmp_path / "ranks.md").exists() and capsys.readouterr().err == ""
    monkeypatch.setenv("THROUGHPUT_PARENT_MERGES", "1")
    (tmp_path / "ranks.md").unlink()
    after_rank(tmp_path)                      # the launcher parent merges instead
    assert not (tmp_path / "ranks.md").exists()
