"""Tiny training steps for benchmarks/scale.py: a 4x4 Linear, SGD, one thread.

Usage: python benchmarks/_scale_workload.py MODE STEPS [OUT]
MODE: ``plain`` (no profiler; also what ``throughput profile`` runs), or ``embedded`` (3 phases and
``step()`` per step, report folder written to OUT by ``throughput.profile``).
The last line printed is ``last_line <unix time> <mean step seconds>``: the parent measures the post-run
work from that time to the process's exit.
"""
import sys
import time

import torch

torch.set_num_threads(1)


def profiled_steps(prof, steps, model, opt, x, keep_loss=True):
    """The embedded mode's loop: 3 phases and step() per step."""
    for _ in range(steps):
        with prof.phase("forward"):
            loss = model(x).square().mean()
        with prof.phase("backward"):
            opt.zero_grad(set_to_none=True)
            loss.backward()
        with prof.phase("optimizer"):
            opt.step()
        prof.step(loss=loss if keep_loss else None)


def main() -> None:
    mode, steps = sys.argv[1], int(sys.argv[2])
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 4)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(2, 4)
    if mode == "plain":
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = model(x).square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        mean = (time.perf_counter() - t0) / steps
    else:
        import throughput
        with throughput.profile(sys.argv[3], print_report=False, progress=False) as prof:
            t0 = time.perf_counter()
            profiled_steps(prof, steps, model, opt, x)
            mean = (time.perf_counter() - t0) / steps
            print(f"last_line {time.time():.6f} {mean:.9f}", flush=True)
        return
    print(f"last_line {time.time():.6f} {mean:.9f}", flush=True)


if __name__ == "__main__":
    main()
