"""Every threshold the verdict, the findings, the advisor's rules and its search decide by: one table.

A torch-free leaf module (it imports nothing from throughput). Shares are of step wall time (0..1);
gains are relative (0.03 = 3% more samples/s). Each value is stated in the evidence of what it
decides, so a user can disagree with it; docs/advisor.md cites this table by name, and
``tests/test_thresholds.py`` checks that no other module carries a literal threshold of its own.

``THRESHOLDS`` lists them with one line each, for the docs and for that test.
"""

from __future__ import annotations

from typing import Final, Mapping

# -- the step's phases (verdict, findings, rules) -------------------------------------------------
DATA_WAIT_WORTH_WORKERS: Final = 0.10   # data wait above this: more loader workers are worth a try
INPUT_BOUND_SHARE: Final = 0.20          # data wait above this: the step is input-bound (verdict); compute
#                                          knobs (precision) are not tried while it holds
H2D_SHARE: Final = 0.05                  # host-to-device copies above this (CUDA): pin memory
OPTIMIZER_SHARE: Final = 0.15            # optimizer above this: a fused / foreach optimizer
OPTIMIZER_BOUND_SHARE: Final = 0.25      # optimizer above this: the verdict is optimizer-bound
EVAL_HEAVY_SHARE: Final = 0.25           # evaluation above this: evaluate less often
CHECKPOINT_HEAVY_SHARE: Final = 0.15     # checkpointing above this: checkpoint less often
UNATTRIBUTED_SHARE: Final = 0.40         # time outside every phase above this: add phases / py-spy
GPU_IDLE_SHARE: Final = 0.30             # device idle above this (CUDA): the host cannot feed the GPU
COMPUTE_SHARE: Final = 0.50              # forward+backward above this: precision matters most
MEMORY_HEADROOM_MIN_SHARE: Final = 0.05  # less device memory left at the allocator's peak: memory-bound (CUDA)
PADDING_FRACTION: Final = 0.15           # padding above this share of tokens: pack sequences
PACKING_MIN_GAIN: Final = 0.02           # packing recommended only above this token gain

# -- the advisor's measured search ------------------------------------------------------------------
MIN_GAIN: Final = 0.03                   # a change must beat the current best by this much
CONFIRM_BAND: Final = 0.10               # closer calls than this are measured again before deciding
LOSS_TOLERANCE: Final = 0.05             # relative loss disagreement a precision may show vs fp32
MEMORY_SAFETY_MARGIN: Final = 0.10       # the memory fit's cap stays this far under the budget
NOISE_FLOOR: Final = 0.02                # a stated noise band is never narrower than this

REPORTABLE_GAIN: Final = 0.005          # a recommendation's gain must round to at least +1%: no "+0%"
STRAGGLER_MIN_SHARE: Final = 0.05        # a straggler rank loses at least this share of the median step
MIN_MOVE_SHARE: Final = 0.01             # compare: a phase moved by at least this share of A's step time
NOISE_BAND_FRACTION: Final = 0.5         # compare: ... and by more than this fraction of the wider p5..p95 band
ABLATION_NOISE_SIGMAS: Final = 2.0       # ablate: a difference within this many baseline std is noise
BN_MIN_BATCH: Final = 16                 # hygiene: BatchNorm below this per-device batch has noisy statistics

# -- checkpoint cadence ------------------------------------------------------------------------------
CADENCE_MIN_SAVING: Final = 0.005        # a measured cadence is advised only if it saves this share

# -- host page faults (analysis/faults.py explains the measurements behind them) -------------------
FAULTS_PER_STEP_MIN: Final = 1000.0      # minor page faults a step
SYSTEM_SHARE_MIN: Final = 0.10           # share of the process's CPU time spent in the kernel

# -- reading a session (session/io.py) ---------------------------------------------------------------
PHASES_OVER_WALL_MAX: Final = 1.01       # a step's exclusive phases may add up to this x its wall (rounding)

# -- the loss (analysis/findings.py, analysis/loss.py) ----------------------------------------------
LOSS_DIVERGENCE_RATIO: Final = 1.5       # smoothed loss above this x its best so far
LOSS_DIVERGENCE_VS_FIRST: Final = 1.2    # smoothed loss above this x the first loss
LOSS_DIVERGENCE_GAVE_BACK: Final = 0.1   # ... and risen by this share of what it had fallen (first
                                         # smoothed value to best): noise around a converged
                                         # 1e-5 loss is 20x its best, not a divergence
LOSS_DIVERGENCE_NOISE_Z: Final = 7.0     # ... and risen this many standard errors of the rise out of the
                                         # loss's step-to-step noise: a stationary noisy loss (lr 0,
                                         # random targets) wanders 1.5x over its lowest rolling median;
                                         # over 200 seeds of pure noise the largest rise was 5.4 of them
                                         # (4,000 points; 4.9 at 400, 5.0 at 40)
LOSS_SPIKE_Z: Final = 10.0               # robust z-score of an isolated gradient-norm spike (log space)
LOSS_SPIKE_LEVEL_Z: Final = 5.0          # loss spike: the loss's level (median of 5 points) rose this many
                                         # robust std of the preceding 30 log losses; 40 healthy SGD and
                                         # Adam runs (batch 1-64) reached 2.9 of them, a mid-run label
                                         # shift the model relearned 6.7
LOSS_SPIKE_LEVEL_RATIO: Final = 1.5      # ... and to this x its baseline (a 3% bump of a 0.3%-noise loss
                                         # is no spike)
LOSS_FLAT_IMPROVEMENT: Final = 0.05      # less improvement than this over the run: flat
LOSS_NEAR_CHANCE: Final = 0.95           # ending above this x the chance-level loss: flat
OVERFIT_RISE: Final = 0.02               # validation loss rise above its minimum, relative
OVERFIT_FLAT: Final = 0.005              # |relative validation change| counted as flat
OVERFIT_TRAIN_DROP: Final = 0.05         # training loss drop that makes a flat/rising val overfitting

THRESHOLDS: Final[Mapping[str, float]] = {
    name: value for name, value in dict(globals()).items()
    if name.isupper() and isinstance(value, (int, float)) and not isinstance(value, bool)
}
