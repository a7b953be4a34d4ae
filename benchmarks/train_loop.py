"""What the tuned loop costs: its step time against a bare hand-written loop, and a checkpoint's cost.

Arms, interleaved in one process (A B A B ...), each a fresh run of ``examples/recipes/tiny_gpt.py``:

- ``bare``: a minimal nanoGPT-style loop (AdamW, clipping, the same batches), no profiler, no per-step
  host sync, no metrics, no checkpoints.
- ``loop``: ``throughput.train`` with checkpoints and evaluation off (profiler phases, one sync per
  step for loss/grad norm, metrics.jsonl).
- ``loop+ckpt``: the same with an atomic, fsynced checkpoint every step.

Reported: medians of steady-state step times (the first ``WARMUP`` steps of each run dropped), as
ratios to ``bare``. ``python -m benchmarks.train_loop [--quick]``.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "examples" / "recipes" / "tiny_gpt.py"
WARMUP = 5


def _bare(steps: int) -> list[float]:
    """Step times of a minimal loop over the same recipe, batches and optimizer settings."""
    from throughput.loop import load_recipe
    from throughput.loop.config import TrainConfig
    from throughput.loop.data import BatchStream, DataPosition
    from throughput.loop.rng import seed_everything
    from throughput.loop.runtime import param_groups

    recipe = load_recipe(RECIPE)
    cfg = TrainConfig().with_overrides(recipe.config)
    seed_everything(cfg.seed)
    model = recipe.make_model(cfg)
    train, _ = recipe.make_datasets(cfg)
    stream = BatchStream(train, batch_size=cfg.micro_batch_size, seed=0, shuffle=True, num_workers=0,
                         pin_memory=False, collate_fn=recipe.collate_fn, position=DataPosition())
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                            foreach=True)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = stream.next()
        loss_sum, n = recipe.loss_fn(model, batch)
        (loss_sum / n).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return times[WARMUP:]


def _loop(steps: int, ckpt: bool, root: Path) -> list[float]:
    import throughput
    from throughput.loop.metrics import read_metrics

    out = Path(tempfile.mkdtemp(dir=root))
    sets = {"steps": steps, "eval_every": 0, "ckpt_every_steps": 1 if ckpt else 0, "keep_last": 2}
    throughput.train(RECIPE, out=out / "run", overrides=sets, progress=False)
    records = [r for r in read_metrics(out / "run" / "metrics.jsonl") if r.get("kind") == "train"]
    # The final step also evaluates and checkpoints (always): leave it out with the warm-up.
    return [float(r["step_s"]) for r in records[WARMUP:-1]]


def run(quick: bool) -> dict[str, Any]:
    torch.set_num_threads(1)
    steps, rounds = (30, 3) if quick else (80, 5)
    arms: dict[str, list[float]] = {"bare": [], "loop": [], "loop+ckpt": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _bare(WARMUP + 2)  # burn-in: imports (torch._dynamo via torch.optim), allocator, kernels
        for _ in range(rounds):
            arms["bare"] += _bare(steps)
            arms["loop"] += _loop(steps, ckpt=False, root=root)
            arms["loop+ckpt"] += _loop(steps, ckpt=True, root=root)
    medians = {k: statistics.median(v) for k, v in arms.items()}
    result = {
        "benchmark": "train_loop", "quick": quick, "steps_per_run": steps, "rounds": rounds,
        "median_step_s": medians,
        "loop_over_bare": medians["loop"] / medians["bare"],
        "loop_ckpt_over_bare": medians["loop+ckpt"] / medians["bare"],
        "checkpoint_over_step": (medians["loop+ckpt"] - medians["loop"]) / medians["loop"],
    }
    _write(result)
    return result


def _write(result: dict[str, Any]) -> None:
    out = REPO / "reports" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_loop.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["median_step_s"]
    lines = ["# train_loop: the tuned loop's cost against a bare loop (tiny_gpt, CPU, 1 thread)", "",
             f"{result['rounds']} interleaved rounds x {result['steps_per_run']} steps per arm; "
             f"medians of steady-state step times (first {WARMUP} steps dropped).", "",
             "| arm | median step | ratio to bare |", "|---|---|---|"]
    for arm in ("bare", "loop", "loop+ckpt"):
        lines.append(f"| {arm} | {m[arm] * 1e3:.2f} ms | {m[arm] / m['bare']:.2f}x |")
    lines += ["", f"A checkpoint every step adds {result['checkpoint_over_step']:.0%} to a loop step "
              "(atomic write + fsync of model, optimizer and RNG state).", ""]
    (out / "train_loop.md").write_text("\n".join(lines))


if __name__ == "__main__":
    res = run(quick="--quick" in sys.argv[1:])
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) and math.isfinite(v) else v)
                      for k, v in res.items() if k != "median_step_s"}, indent=2))
