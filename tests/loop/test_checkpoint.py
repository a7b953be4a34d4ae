"""Checkpoint files: atomic, checksummed, pruned; a damaged newest one (or a folder named like one, or a
payload missing keys) is skipped with one log line; SIGTERM saves and exits; resume after a fallback
still matches an uninterrupted run bit for bit."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

import throughput
from tests.loop.helpers import MICRO_GPT, Zygote, assert_tensors_equal, cli_args, final_state
from throughput.loop.checkpoint import (CheckpointError, DamagedCheckpoint, list_checkpoints, load_latest,
                                        read_checkpoint, save_checkpoint)
from throughput.loop.metrics import read_metrics


def _payload(step: int) -> dict:
    return {"step": step, "w": torch.full((3,), float(step)), "meta": {"note": "x", "values": [1, 2]}}


def test_save_load_roundtrip_and_keep_last(tmp_path: Path) -> None:
    for step in range(1, 6):
        save_checkpoint(tmp_path, step, _payload(step), keep_last=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [4, 5]
    loaded = load_latest(tmp_path)
    assert loaded is not None and loaded.step == 5
    assert torch.equal(loaded.payload["w"], torch.tensor([5.0, 5.0, 5.0]))
    assert loaded.payload["meta"] == {"note": "x", "values": [1, 2]}
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith("ckpt-")]  # no temporaries left


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])


def _flip_payload_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-50] ^= 0xFF  # inside the payload: length still right, checksum now wrong
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, reason", [(_truncate, "truncated"), (_flip_payload_byte, "checksum mismatch")])
def test_damaged_newest_is_skipped_and_quarantined(tmp_path: Path, damage, reason: str) -> None:
    for step in (2, 4, 6):
        save_checkpoint(tmp_path, step, _payload(step), keep_last=3)
    damage(tmp_path / "ckpt-00000006.pt")
    with pytest.raises(DamagedCheckpoint, match=reason):
        read_checkpoint(tmp_path / "ckpt-00000006.pt")
    loaded = load_latest(tmp_path, quarantine=True)
    assert loaded is not None and loaded.step == 4
    assert len(loaded.skipped) == 1 and loaded.skipped[0].startswith(f"ckpt-00000006.pt: {reason}")
    assert (tmp_path / "ckpt-00000006.pt.damaged").exists()  # kept for inspection, out of the rotation


def test_every_checkpoint_damaged_is_an_error(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 1, _payload(1), keep_last=3)
    _truncate(tmp_path / "ckpt-00000001.pt")
    with pytest.raises(CheckpointError, match="every checkpoint"):
        load_latest(tmp_path)


def test_a_folder_named_like_a_checkpoint_is_skipped_and_not_pruned(tmp_path: Path) -> None:
    for step in (2, 4):
        save_checkpoint(tmp_path, step, _payload(step), keep_last=2)
    (tmp_path / "ckpt-00000084.pt").mkdir()                  # newest by name, but a folder
    (tmp_path / "ckpt-00000084.pt" / "keep.txt").write_text("not ours")
    loaded = load_latest(tmp_path, quarantine=True)
    assert loaded is not None and loaded.step == 4
    assert loaded.skipped == ("ckpt-00000084.pt: not a regular file",)
    assert (tmp_path / "ckpt-00000084.pt.damaged" / "keep.txt").read_text() == "not ours"  # moved, not deleted
    (tmp_path / "ckpt-00000090.pt").mkdir()
    save_checkpoint(tmp_path, 6, _payload(6), keep_last=2)   # pruning deletes files only; the folder stays
    assert [s for s, p in list_checkpoints(tmp_path) if p.is_file()] == [4, 6]
    assert (tmp_path / "ckpt-00000090.pt").is_dir()


def test_a_payload_the_caller_cannot_use_is_skipped_like_a_damaged_one(tmp_path: Path) -> None:
    from throughput.loop.state import check_complete

    save_checkpoint(tmp_path, 2, _payload(2), keep_last=3)   # valid checksum, but not a training payload
    with pytest.raises(CheckpointError, match="every checkpoint .*payload lacks 'format'"):
        load_latest(tmp_path, validate=check_complete)
    assert load_latest(tmp_path) is not None                 # without the check it loads: the file is fine


def test_pickled_code_is_refused_by_weights_only(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 1, {"odd": OrderedDict(a=1), "obj": Path("/etc")}, keep_last=1)
    with pytest.raises(DamagedCheckpoint, match="weights_only"):
        read_checkpoint(tmp_path / "ckpt-00000001.pt")


def test_loop_resumes_from_previous_checkpoint_when_newest_is_damaged(tmp_path: Path,
                                                                      capfd: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    sets = {"steps": 8, "ckpt_every_steps": 2, "keep_last": 3}
    reference = throughput.train(MICRO_GPT, out=tmp_path / "ref", overrides=sets, progress=False)
    first = throughput.train(MICRO_GPT, out=tmp_path / "run", overrides=sets, progress=False)
    assert (reference.step, first.step) == (8, 8)
    ckpts = tmp_path / "run" / "checkpoints"                 # holds steps 4, 6, 8 (keep_last 3)
    _flip_payload_byte(ckpts / "ckpt-00000008.pt")           # checksum mismatch
    (ckpts / "ckpt-00000084.pt").mkdir()                     # a folder named like the newest checkpoint
    payload = read_checkpoint(ckpts / "ckpt-00000006.pt")
    del payload["optimizer"]                                 # verifies, but a resume cannot use it
    save_checkpoint(ckpts, 6, payload, keep_last=10)
    capfd.readouterr()
    resumed = throughput.train(MICRO_GPT, out=tmp_path / "run", overrides=sets, resume=True, progress=False)
    assert resumed.resumed_from == 4 and resumed.step == 8  # steps 5 to 8 ran again
    assert capfd.readouterr().err.splitlines() == [
        "train: skipped checkpoint ckpt-00000084.pt: not a regular file; resuming from ckpt-00000004.pt",
        "train: skipped checkpoint ckpt-00000008.pt: checksum mismatch; resuming from ckpt-00000004.pt",
        "train: skipped checkpoint ckpt-00000006.pt: payload lacks 'optimizer'; resuming from ckpt-00000004.pt"]
    assert_tensors_equal(final_state(tmp_path / "run")["model"], final_state(tmp_path / "ref")["model"], "model")


def test_sigterm_saves_a_checkpoint_then_exits_143(tmp_path: Path, zygote: Zygote) -> None:
    out = tmp_path / "run"
    pid = zygote.spawn(cli_args(out, "steps=100000", "ckpt_every_steps=0"), log=tmp_path / "log.txt")
    try:
        deadline = time.monotonic() + 60
        while len([r for r in read_metrics(out / "metrics.jsonl") if r.get("kind") == "train"]) < 3:
            assert time.monotonic() < deadline, (tmp_path / "log.txt").read_text()
            time.sleep(0.01)
    finally:
        os.kill(pid, signal.SIGTERM)
    assert zygote.wait(pid) == 143
    session = json.loads((out / "session.json").read_text())
    assert session["info"]["end"] == "terminated"
    logged = max(r["step"] for r in read_metrics(out / "metrics.jsonl") if r.get("kind") == "train")
    # ckpt_every_steps=0: the only checkpoint is the one SIGTERM asked for, at the last finished step.
    assert [s for s, _ in list_checkpoints(out / "checkpoints")] == [logged]


def test_nonfinite_loss_stops_without_checkpointing_the_bad_state(tmp_path: Path) -> None:
    import types

    from throughput.loop import load_recipe, recipe_from_object

    torch.set_num_threads(1)
    base = load_recipe(MICRO_GPT)
    calls = {"n": 0}

    def loss_fn(model, batch):
        calls["n"] += 1
        loss_sum, n = base.loss_fn(model, batch)
        return (loss_sum * float("nan") if calls["n"] == 3 else loss_sum), n

    recipe = recipe_from_object(types.SimpleNamespace(build_model=base.build_model, build_datasets=base.build_datasets,
                                                      loss_fn=loss_fn, collate_fn=base.collate_fn, config={}), name="nan")
    result = throughput.train(recipe, out=tmp_path, overrides={"steps": 10, "ckpt_every_steps": 1, "eval_every": 0},
                              progress=False)
    assert (result.end, result.step) == ("nonfinite", 3)
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [1, 2]  # step 3 not saved
    from throughput.loop.config import field_docs
    assert "not checkpointed" in field_docs()["stop_on_nonfinite"]   # `--set help` says what this test shows
    assert [f.rule_id for f in result.findings] == ["loss.nonfinite"]
    assert json.loads((tmp_path / "session.json").read_text())["info"]["end"] == "exception"
