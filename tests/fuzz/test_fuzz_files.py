"""Fuzzing the files throughput reads back: damaged sessions through report / compare / advise, damaged
plans through train --plan, damaged recipe configs through train. The property (tests/fuzz/mutations.py):
exit 0, or exit 2 with one line; never a traceback; nothing written outside --out.

Seeds and example counts are fixed (``@seed``, ``max_examples``) and listed in docs/reliability.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

from hypothesis import given, seed, settings
from hypothesis import strategies as st

from tests.fuzz.mutations import LIGHT_RECIPE, Reached, check_contract, mutated_document, mutated_text
from tests.loop.helpers import REPO
from throughput.session.io import save_session, session_to_dict
from throughput.session.records import Event, RunEnd, RunInfo, Span, StepRecord, StepRule, TelemetrySample
from throughput.session.session import Session

SESSION_EXAMPLES = 150      # per command
PLAN_EXAMPLES = 120
CONFIG_EXAMPLES = 80
SUBPROCESS_EXAMPLES = 4


def valid_session() -> Session:
    """Every record kind and every optional field set at least once: 4 steps of 1 s (data 0.2, forward
    0.3, backward 0.4), losses, samples/tokens, spans, an event and telemetry."""
    steps = tuple(StepRecord(index=i, start_s=float(i), end_s=float(i + 1),
                             phase_s={"data": 0.2, "forward": 0.3, "backward": 0.4}, samples=8, tokens=1024,
                             padding_tokens=64, loss=2.0 - 0.1 * i, grad_norm=1.0, peak_memory_bytes=2**20,
                             micro_steps=1) for i in range(4))
    spans = tuple(Span(phase="forward", step=i, start_s=i + 0.2, end_s=i + 0.5, depth=0) for i in range(4))
    info = RunInfo(run_id="fuzz", argv=("train.py", "--lr", "3e-4"), step_rule=StepRule.OPTIMIZER, warmup_steps=1,
                   end=RunEnd.COMPLETED, exit_code=0, flops_per_step=1e9, peak_flops=1e12, peak_flops_source="test",
                   notes=("a note",))
    events = (Event(kind="context", step=0, message="loader", detail={"num_workers": 0, "pin_memory": False}),)
    telemetry = tuple(TelemetrySample(time_s=float(i), source="main", metric="rss_bytes", value=1e8) for i in range(3))
    return Session(info=info, steps=steps, spans=spans, events=events, telemetry=telemetry)


SESSION_DOC: dict[str, Any] = json.loads(json.dumps(session_to_dict(valid_session())))


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as name:
        yield Path(name)


@seed(1201)
@settings(max_examples=SESSION_EXAMPLES)
@given(text=mutated_text(SESSION_DOC), command=st.sampled_from(["report", "compare", "advise"]),
       fmt=st.sampled_from(["table", "md", "json"]))
def test_damaged_sessions(text: str, command: str, fmt: str) -> None:
    with scratch() as root:
        bad = root / "session.json"
        bad.write_text(text)
        good = save_session(valid_session(), root / "good.json")
        out = root / "out"
        argv = {"report": ["report", str(bad), "--format", fmt],
                "compare": ["compare", str(good), str(bad), "--format", fmt],
                "advise": ["advise", str(bad), "--plan-out", str(out / "plan.json")]}[command]
        check_contract(argv, root, allowed=[out])


def _stub_training() -> Any:
    def reached(*args: object, **kwargs: object) -> None:
        raise Reached
    return mock.patch("throughput.loop.loop.run_training", reached)


PLAN_DOC = {"plan_version": 1, "source": "throughput advise", "model_fingerprint": None, "micro_batch_size": 8,
            "grad_accum": 2, "amp": "fp32", "num_workers": 0, "lr": 0.001, "pin_memory": False,
            "notes": ["micro_batch_size: measured"]}


@seed(1202)
@settings(max_examples=PLAN_EXAMPLES)
@given(text=mutated_text(PLAN_DOC))
def test_damaged_plans(text: str) -> None:
    """A plan that passes every check reaches the training loop (stubbed: the run is not the subject)."""
    with scratch() as root, _stub_training():
        plan, recipe = root / "plan.json", root / "recipe.py"
        plan.write_text(text)
        recipe.write_text(LIGHT_RECIPE)
        check_contract(["train", str(recipe), "--plan", str(plan), "--out", str(root / "out")], root,
                       allowed=[root / "out"])


CONFIG_DOC = {"steps": 30, "micro_batch_size": 8, "lr": 0.003, "warmup_steps": 5, "schedule": "cosine",
              "amp": "auto", "shuffle": True, "out_dir": "runs/x"}


@seed(1203)
@settings(max_examples=CONFIG_EXAMPLES)
@given(config=mutated_document(CONFIG_DOC))
def test_damaged_recipe_configs(config: Any) -> None:
    with scratch() as root, _stub_training():
        recipe = root / "recipe.py"
        recipe.write_text(LIGHT_RECIPE + f"import json\nconfig = json.loads({json.dumps(config, allow_nan=True)!r})\n")
        check_contract(["train", str(recipe), "--out", str(root / "out")], root, allowed=[root / "out"])


@seed(1204)
@settings(max_examples=SUBPROCESS_EXAMPLES)
@given(text=mutated_text(SESSION_DOC))
def test_damaged_sessions_in_a_real_process(text: str) -> None:
    """A few examples through ``python -m throughput``: the process itself prints no traceback."""
    with scratch() as root:
        bad = root / "session.json"
        bad.write_text(text)
        proc = subprocess.run([sys.executable, "-m", "throughput", "report", str(bad)], capture_output=True,
                              text=True, cwd=root, timeout=120, env={"PYTHONPATH": str(REPO), "PATH": ""})
        assert proc.returncode in (0, 2), proc.stderr
        assert "Traceback" not in proc.stderr
        if proc.returncode == 2:
            assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("throughput: error: ")
        assert sorted(p.name for p in root.iterdir()) == ["session.json"]
