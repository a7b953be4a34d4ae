"""``torch.compile`` in the two ways people use it: ``--mode module`` compiles the model
(``torch.compile(model)``; backward and step stay eager), ``--mode step`` compiles a whole training
step function with ``zero_grad``, the forward, ``backward`` and ``clip_grad_norm_`` inside it (the
optimizer step stays outside). ``--backend`` picks inductor or eager.

Besides the loss, it prints what dynamo did (graphs, compiled frames, graph breaks, recompiles): the
profiled run must print the same, i.e. the profiler changed no graph. The frames dynamo looked at, the
break reasons and the failed guards are notes: reported where they differ.
"""

from __future__ import annotations

import argparse
import collections
import tempfile

import torch
import torch._dynamo
from torch import nn

from _common import UpdateCounter, interval, note, params_sha256, report, seed_all

STEPS, BATCH = 30, 32


def dynamo_counts() -> dict[str, int]:
    """The counters dynamo keeps (torch._dynamo.utils.counters): what was compiled and where it broke."""
    counters = torch._dynamo.utils.counters
    return {
        "graphs": int(counters["stats"]["unique_graphs"]),
        "compiled_frames": int(counters["frames"]["ok"]),
        "graph_breaks": int(sum(counters["graph_break"].values())),
        "recompiles": sum(len(v) for v in torch._dynamo.utils.guard_failures.values()),
    }


def recompile_reasons() -> list[str]:
    """The guard that failed for each recompile (first line of dynamo's reason)."""
    return sorted(r.splitlines()[0].strip() for v in torch._dynamo.utils.guard_failures.values() for r in v)


def short_reason(reason: str) -> str:
    """A graph-break reason's first line and its explanation (the rest is hints and URLs)."""
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    explanation = next((line for line in lines if line.startswith("Explanation:")), "")
    return " ".join(filter(None, (lines[0] if lines else "", explanation)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("module", "step"), required=True)
    parser.add_argument("--backend", choices=("inductor", "eager"), default="inductor")
    parser.add_argument("workdir", nargs="?", default=None)
    args = parser.parse_args()
    seed_all(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    counter = UpdateCounter()
    counter.attach(opt)
    x = torch.randn(STEPS * BATCH, 32)
    y = x[:, :1] * 0.5 + 0.1 * torch.randn(len(x), 1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH)

    if args.mode == "module":
        compiled = torch.compile(model, backend=args.backend)

        def train_step(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(compiled(xb), yb)
            loss.backward()
            return loss
    else:
        @torch.compile(backend=args.backend)
        def train_step(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            return loss

    loss = torch.tensor(float("nan"))
    with interval("train"):
        for i, (xb, yb) in enumerate(loader):
            with interval("first call (compiles)" if i == 0 else "later calls"):
                loss = train_step(xb, yb)
            opt.step()
    reasons = collections.Counter({short_reason(k): v for k, v in torch._dynamo.utils.counters["graph_break"].items()})
    note("dynamo frames looked at", int(torch._dynamo.utils.counters["frames"]["total"]))
    note("graph break reasons", dict(sorted(reasons.items())))
    note("recompile guards", recompile_reasons())
    report(updates=counter.count, final_loss=loss.item(), digest=params_sha256(model), dynamo=dynamo_counts())


if __name__ == "__main__":
    main()
