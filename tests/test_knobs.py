"""The knob vocabulary: every knob round-trips through the CLI (`train --set`, `profile --set`), a plan
file and the training loop; unknown keys and bad values are one-line errors everywhere."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from tests.loop.helpers import MICRO_GPT
from tests.zygote import Zygote
from throughput.capture.overrides import launch_env, parse_overrides, parse_set, valid_keys
from throughput.knobs import KNOBS, Knob, KnobError, Value, recipe_knobs, script_knobs, show
from throughput.loop.ablate import plan_variants
from throughput.loop.config import ConfigError, TrainConfig, parse_set_args
from throughput.loop.plan import PlanError, load_plan, plan_from_dict

# Values that cannot run on this machine or would make the loop test slow; each is round-tripped through
# parsing and the plan file all the same, and through the loop where it can run.
NOT_RUN_HERE = {"device": "cuda", "amp": "fp16", "compile": True}


def other_value(k: Knob, default: Any = None) -> Value:
    """A valid value of ``k`` that is not ``default`` (by hand: the type, the range and the choices)."""
    if k.kind is bool:
        return not default if isinstance(default, bool) else True
    if k.choices:
        return next(c for c in reversed(k.choices) if c != default)
    if k.kind is str:
        return "runs/elsewhere"
    low = k.minimum if k.minimum is not None else 0
    if k.kind is int:
        return int(low) + 3 if default != int(low) + 3 else int(low) + 4
    return 0.5 if default != 0.5 else 0.25   # inside every float knob's range, [0, 1] included


def test_every_training_loop_field_is_a_knob_of_the_same_type() -> None:
    fields = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    assert set(fields) == set(recipe_knobs())
    for name, annotation in fields.items():
        assert annotation == KNOBS[name].kind.__name__, name


@pytest.mark.parametrize("name", sorted(KNOBS))
def test_each_knob_round_trips_through_set_text_and_plan_json(name: str) -> None:
    k = KNOBS[name]
    default = getattr(TrainConfig(), name, None)
    value = other_value(k, default)
    assert k.parse(show(value)) == value
    plan = plan_from_dict(json.loads(json.dumps({name: value})), source="test")
    assert plan.settings == {name: value}
    if k.recipe:
        cfg = TrainConfig().with_overrides(parse_set_args([f"{name}={show(value)}"]))
        assert getattr(cfg, name) == value and getattr(cfg, name) != default
        assert getattr(plan.apply(TrainConfig()), name) == value
    if k.script and k.env:      # applied at launch, as the environment (test_allocator_trial.py runs it)
        assert launch_env(parse_set([f"{name}={show(value)}"]))
    elif k.script:
        value = "bf16" if value == "auto" else value          # auto is the loop's, not a script's
        field = "batch_size" if name == "micro_batch_size" else name
        assert getattr(parse_overrides([f"{name}={show(value)}"]), field) == value
    else:
        with pytest.raises(KnobError, match=f"{name} cannot be set on an unmodified script"):
            parse_set([f"{name}={show(value)}"])


def _run_values() -> dict[str, Value]:
    """A non-default value for every loop knob that can run here, in a quick run of the micro recipe."""
    values = {name: other_value(KNOBS[name], default) for name, default in TrainConfig().to_dict().items()}
    values.update({"device": "cpu", "compile": False, "steps": 3, "eval_every": 2, "eval_batches": 1, "log_every": 1,
                   "micro_batch_size": 4, "grad_accum": 2, "num_workers": 0, "ckpt_every_s": 0.0})
    values.pop("out_dir")
    return values


def test_every_loop_knob_reaches_the_loop_from_set_and_from_a_plan_file(tmp_path: Path, zygote: Zygote) -> None:
    """One real run (forked from the warm zygote): half of the knobs from a plan file, the other half from
    --set; run.json holds the configuration the loop used."""
    values = _run_values()
    names = sorted(values)
    from_plan, from_set = names[::2], names[1::2]
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"plan_version": 1, **{k: values[k] for k in from_plan}}))
    assert load_plan(plan).settings == {k: values[k] for k in from_plan}
    sets = [x for key in from_set for x in ("--set", f"{key}={show(values[key])}")]
    out = zygote.start(["train", str(MICRO_GPT), "--quiet", "--out", str(tmp_path / "run"), "--plan", str(plan),
                        *sets], tmp_path / "train-output").result()
    assert out.returncode == 0, out.stderr
    used = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    assert {k: used[k] for k in values} == values
    assert used["out_dir"] == str(tmp_path / "run")


def test_every_script_knob_reaches_the_script(tmp_path: Path, zygote: Zygote) -> None:
    """`throughput profile --set` on a real script (forked from the warm zygote): the overrides the session
    recorded are the values set."""
    script = tmp_path / "train.py"
    script.write_text("import torch\nfrom torch.utils.data import DataLoader, TensorDataset\n"
                      "m = torch.nn.Linear(4, 2)\nopt = torch.optim.SGD(m.parameters(), lr=0.1)\n"
                      "for x, y in DataLoader(TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,))), batch_size=4):\n"
                      "    torch.nn.functional.cross_entropy(m(x), y).backward()\n    opt.step()\n    opt.zero_grad()\n")
    values = {"micro_batch_size": 8, "num_workers": 1, "prefetch_factor": 3, "persistent_workers": True,
              "pin_memory": False, "amp": "bf16", "tf32": False}
    assert set(values) | {"malloc_threshold_bytes"} == set(script_knobs())
    sets = [x for key, v in values.items() for x in ("--set", f"{key}={show(v)}")]
    out = zygote.start(["profile", "--quiet", "--no-plots", "--no-telemetry", "--out", str(tmp_path / "out"), *sets,
                        str(script)], tmp_path / "profile-output").result()
    assert out.returncode == 0, out.stderr
    events = json.loads((tmp_path / "out" / "session.json").read_text())["events"]
    recorded = {k: v for e in events if e["kind"] == "context" for k, v in e["detail"].items()}
    assert {k.removeprefix("override_"): v for k, v in recorded.items() if k.startswith("override_")} == {
        **{k: v for k, v in values.items() if k != "micro_batch_size"}, "batch_size": 8}
    assert recorded["batch_size"] == 8 and recorded["num_workers"] == 1 and recorded["prefetch_factor"] == 3


@pytest.mark.parametrize("argv, message", [
    (["train", str(MICRO_GPT), "--set", "wd=0.1"], "unknown config key 'wd'"),
    (["train", str(MICRO_GPT), "--set", "lr=fast"], "lr must be float, got 'fast'"),
    (["train", str(MICRO_GPT), "--set", "malloc_threshold_bytes=1"], "is not a training-loop key"),
    (["ablate", str(MICRO_GPT), "--vary", "amp=fp8"], "amp must be one of auto | bf16 | fp16 | fp32, got 'fp8'"),
    (["ablate", str(MICRO_GPT), "--vary", "nope=1,2"], "unknown config key 'nope'"),
    (["profile", "--set", "workers=2", str(MICRO_GPT)], "unknown override 'workers'; valid keys: " + ", ".join(valid_keys())),
    (["profile", "--set", "num_workers=-1", str(MICRO_GPT)], "num_workers must be >= 0, got -1"),
    (["profile", "--set", "grad_accum=2", str(MICRO_GPT)], "grad_accum cannot be set on an unmodified script"),
])
def test_unknown_keys_and_bad_values_are_one_line_errors(argv: list[str], message: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from throughput.cli.main import main
    extra = [] if argv[0] == "profile" else ["--out", str(tmp_path / "o")]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("throughput: error: ") and message in err
    assert not (tmp_path / "o").exists()       # refused before anything was written


@pytest.mark.parametrize("raw, message", [({"lr": "fast"}, "lr must be float, got 'fast'"),
                                          ({"micro_batch_size": 0}, "micro_batch_size must be >= 1, got 0"),
                                          ({"nope": 1}, "unknown key 'nope'")])
def test_plan_values_are_validated_by_the_same_knobs(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        plan_from_dict(raw, source="p.json")
    with pytest.raises((ConfigError, PlanError)):
        TrainConfig().with_overrides(raw)
