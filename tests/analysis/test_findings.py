"""Hygiene findings from hand-made sessions: each expected finding follows from the numbers written here."""

from __future__ import annotations

import dataclasses

from throughput.analysis.findings import SPIKE_RATIO, SPIKE_WINDOW, loss_spikes
from throughput.analysis.summary import summarize
from throughput.report import RENDERERS
from throughput.session.records import Event
from tests.helpers import make_session


def _with(session, events=(), losses=None):  # type: ignore[no-untyped-def]
    steps = session.steps
    if losses is not None:
        steps = tuple(dataclasses.replace(s, loss=l) for s, l in zip(steps, losses))
    return dataclasses.replace(session, steps=steps, events=tuple(events))


def _kinds(session) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.kind for f in summarize(session).findings]


def test_workers_zero_only_when_input_bound() -> None:
    ctx = Event(kind="context", step=0, message="loader", detail={"num_workers": 0, "pin_memory": False})
    # data 0.3 of a 1.0 s step = 30% >= 20%: input-bound
    assert _kinds(_with(make_session(data=0.3, forward=0.7), [ctx])) == ["num_workers_zero"]
    # data 0.1 of 1.0 s = 10% < 20%: not input-bound, so no finding
    assert _kinds(_with(make_session(data=0.1, forward=0.9), [ctx])) == []


def test_pin_memory_only_on_cuda() -> None:
    ctx = Event(kind="context", step=0, message="loader", detail={"num_workers": 4, "pin_memory": False})
    assert _kinds(_with(make_session(forward=1.0, device="cuda"), [ctx])) == ["pin_memory_off"]
    assert _kinds(_with(make_session(forward=1.0, device="cpu"), [ctx])) == []


def test_non_finite_loss_names_the_first_step() -> None:
    session = _with(make_session(n_steps=4, forward=1.0), losses=[1.0, float("nan"), 0.9, float("inf")])
    (finding,) = summarize(session).findings
    assert finding.kind == "loss_non_finite" and finding.step == 1 and "2 step(s)" in finding.message


def test_loss_spikes_against_the_median_of_the_previous_window() -> None:
    losses = [1.0] * SPIKE_WINDOW + [2.9, 3.0, 1.0]   # 2.9 < 3 x median 1.0 <= 3.0
    session = _with(make_session(n_steps=len(losses), forward=1.0), losses=losses)
    assert loss_spikes(session.steps) == [SPIKE_WINDOW + 1]
    assert SPIKE_RATIO == 3.0
    unclipped = Event(kind="context", step=0, message="clip", detail={"grad_clipping": False})
    clipped = Event(kind="context", step=0, message="clip", detail={"grad_clipping": True})
    assert _kinds(_with(session, [unclipped], losses)) == ["loss_spikes_unclipped"]
    assert _kinds(_with(session, [clipped], losses)) == []


def test_capture_events_become_findings_in_every_renderer() -> None:
    event = Event(kind="bn_small_batch", step=3, message="Net has 2 BatchNorm layer(s) and trains on 8",
                  detail={"samples": 8})
    summary = summarize(_with(make_session(forward=1.0), [event]))
    (finding,) = summary.findings
    assert finding.step == 3 and finding.evidence == ("samples=8",) and "GroupNorm" in finding.action
    for name, render in RENDERERS.items():
        assert "bn_small_batch" in render(summary), name
