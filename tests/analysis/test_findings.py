"""Hygiene findings from hand-made sessions: each expected finding follows from the numbers written here."""

from __future__ import annotations

import dataclasses

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


def test_loss_spikes_unclipped_is_the_diagnosis_s_spike_in_a_run_without_clipping() -> None:
    """The hygiene finding reads the loss diagnosis's spike rule (a level excursion that comes back):
    one step at 3x the median, as a hard sample of a small batch gives, is not a spike any more."""
    unclipped = Event(kind="context", step=0, message="clip", detail={"grad_clipping": False})
    clipped = Event(kind="context", step=0, message="clip", detail={"grad_clipping": True})
    one_hard_batch = [1.0] * 40 + [3.0] + [1.0] * 39
    session = _with(make_session(n_steps=80, forward=1.0), losses=one_hard_batch)
    assert "loss_spikes_unclipped" not in _kinds(_with(session, [unclipped], one_hard_batch))
    # the loss's level at 4x for 8 steps, then back: a spike (median of 5 well over 1.5x and 5 robust
    # std of a baseline with a little noise), in a run that does not clip
    spiked = [1.0 + 0.01 * (i % 3) for i in range(40)] + [4.0] * 8 + [1.0 + 0.01 * (i % 3) for i in range(32)]
    session = _with(make_session(n_steps=80, forward=1.0), losses=spiked)
    assert "loss_spikes_unclipped" in _kinds(_with(session, [unclipped], spiked))
    assert "loss_spikes_unclipped" not in _kinds(_with(session, [clipped], spiked))


def test_capture_events_become_findings_in_every_renderer() -> None:
    event = Event(kind="bn_small_batch", step=3, message="Net has 2 BatchNorm layer(s) and trains on 8",
                  detail={"samples": 8})
    summary = summarize(_with(make_session(forward=1.0), [event]))
    (finding,) = summary.findings
    assert finding.step == 3 and finding.evidence == ("samples=8",) and "GroupNorm" in finding.action
    for name, render in RENDERERS.items():
        assert "bn_small_batch" in render(summary), name
