"""A non-finite loss under a GradScaler: the finding does not advise the GradScaler the run already had."""

from __future__ import annotations

from dataclasses import replace

from tests.helpers import make_session
from throughput.analysis.findings import ACTIONS
from throughput.analysis.summary import summarize
from throughput.session.records import Event
from throughput.session.session import Session


def _nan_at_step_2(scaler: bool) -> Session:
    s = make_session(n_steps=4, forward=0.5, backward=0.4, optimizer=0.1)
    steps = tuple(replace(st, loss=float("nan")) if st.index == 2 else st for st in s.steps)
    events = (Event(kind="context", step=0, message="grad scaler", detail={"grad_scaler": True,
                                                                          "grad_scaler_skipped": 0}),) if scaler else ()
    return Session(info=s.info, steps=steps, events=events)


def test_without_a_scaler_the_finding_suggests_one() -> None:
    f = next(f for f in summarize(_nan_at_step_2(False)).findings if f.rule_id == "loss_non_finite")
    assert f.action == ACTIONS["loss_non_finite"] and "GradScaler" in f.action


def test_with_a_scaler_it_does_not() -> None:
    f = next(f for f in summarize(_nan_at_step_2(True)).findings if f.rule_id == "loss_non_finite")
    assert "GradScaler" not in f.action and f.first_step == 2
    assert "a GradScaler was in use (the loss shown is the unscaled one)" in f.evidence
