"""FLOPs of a training step counted with FlopCounterMode, checked against hand-derived formulas."""

from __future__ import annotations

import throughput
import pytest
import torch
from torch import nn

from throughput.telemetry.flops import count_flops, measure_cpu_peak_flops, set_flops_per_step
from throughput.capture.profiler import Profiler


def test_linear_layer_forward_and_backward() -> None:
    B, n_in, n_out = 8, 16, 4
    layer = nn.Linear(n_in, n_out)
    x = torch.randn(B, n_in, requires_grad=True)
    fwd, _ = count_flops(lambda: layer(x))
    assert fwd == 2 * B * n_in * n_out                      # 2 * 8 * 16 * 4 = 1024
    step, _ = count_flops(lambda: layer(x).sum().backward())
    # backward does two matmuls of the same size (grad input, grad weight): 3x the forward
    assert step == 3 * 2 * B * n_in * n_out                 # 3072


class TinyTransformer(nn.Module):
    """One pre-norm block with single-head attention written as explicit matmuls, then an LM head."""

    def __init__(self, vocab: int, d: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.up = nn.Linear(d, 4 * d)
        self.down = nn.Linear(4 * d, d)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        att = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
        x = x + self.proj(att @ v)
        x = x + self.down(torch.relu(self.up(x)))
        return self.head(x)


def test_tiny_transformer_step() -> None:
    B, T, d, V = 2, 8, 16, 32
    model = TinyTransformer(V, d)
    ids = torch.randint(0, V, (B, T))
    fwd, _ = count_flops(lambda: model(ids))
    linear = 2 * B * T * (d * 3 * d + d * d + d * 4 * d + 4 * d * d + d * V)   # qkv, proj, up, down, head
    attention = 2 * (2 * B * T * T * d)                                        # q @ k^T and att @ v
    assert fwd == linear + attention                                           # 2*16*(768+256+1024+1024+512)+8192
    step, _ = count_flops(lambda: nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten()).backward())
    # every matmul's operands require grad (the embedding output does), so backward is 2x forward
    assert step == 3 * (linear + attention)


def test_measured_cpu_peak_is_positive_and_plausible() -> None:
    peak = measure_cpu_peak_flops("fp32", size=128, seconds=0.05)
    # no CPU does 100 TFLOP/s of fp32 matmul; a busy machine only makes the measured rate lower, so
    # there is no lower bound here but > 0 (the arithmetic is checked exactly below, on a fake clock)
    assert 0 < peak < 1e14


def test_measured_cpu_peak_arithmetic_on_a_fake_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    import throughput.telemetry.flops as flops

    class Ticking:                      # every perf_counter() read advances 1 ms
        now_s = 0.0

        def perf_counter(self) -> float:
            self.now_s += 0.001
            return self.now_s

    monkeypatch.setattr(flops, "time", Ticking())
    # each repeat is 4 matmuls of 2 x 128^3 FLOPs between two reads 1 ms apart
    assert measure_cpu_peak_flops("fp32", size=128, seconds=0.01) == pytest.approx(4 * 2 * 128**3 / 0.001)


def test_set_flops_per_step_reaches_the_summary() -> None:
    prof = Profiler(device="cpu", warmup_steps=0)
    set_flops_per_step(prof, 1e3, dtype="fp32")   # tiny: far below any CPU peak
    with prof:
        for _ in range(3):
            with prof.phase("forward"):
                torch.ones(4).sum()
            prof.step()
    s = throughput.summarize(prof)
    assert s.mfu.flops_per_step == 1e3
    assert s.mfu.peak_source.startswith("measured")
    assert s.mfu.value is not None and 0 < s.mfu.value <= 1
    with pytest.raises(ValueError, match="flops_per_step must be > 0"):
        set_flops_per_step(prof, 0)


def _mlp_run(prof: Profiler, steps: int) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(8, 16), torch.randn(8, 4)
    with prof:
        for _ in range(steps):
            with prof.phase("forward"):
                loss = nn.functional.mse_loss(model(x), y)
            with prof.phase("backward"):
                loss.backward()
            with prof.phase("optimizer"):
                opt.step()
                opt.zero_grad()
            prof.step()


def test_step_flop_counter_counts_one_whole_step() -> None:
    from throughput.telemetry import TelemetryController
    tel = TelemetryController(nvml=False, host=False, count_flops_at_step=1, dtype="fp32")
    prof = Profiler(device="cpu", warmup_steps=2, telemetry=tel)
    _mlp_run(prof, steps=5)
    B, i, h, o = 8, 16, 32, 4
    forward = 2 * B * i * h + 2 * B * h * o          # 8192 + 2048
    # backward: grad weight of both layers, grad input of the second only (x needs no grad)
    backward = 2 * B * i * h + 2 * (2 * B * h * o)   # 8192 + 4096
    info = prof.session().info
    assert info.flops_per_step == forward + backward   # 22528, counted on step 1 only
    assert info.peak_flops is not None and info.peak_flops_source.startswith("measured")
    assert any("counted with FlopCounterMode on step 1" in n for n in info.notes)


def test_step_flop_counter_run_ends_inside_the_counted_step() -> None:
    from throughput.telemetry import TelemetryController
    tel = TelemetryController(nvml=False, host=False, count_flops_at_step=3)
    prof = Profiler(device="cpu", warmup_steps=0, telemetry=tel)
    _mlp_run(prof, steps=3)                          # steps 0..2 close; counting began after step 2
    info = prof.session().info
    assert info.flops_per_step is None
    assert any("FLOPs not counted: the run ended before step 3 closed" in n for n in info.notes)
    from torch.utils._python_dispatch import _get_current_dispatch_mode
    assert _get_current_dispatch_mode() is None      # the counting mode was left
