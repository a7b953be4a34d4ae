"""The settings outside the script that change how fast it runs, recorded with every run so that
``throughput compare`` can say what differs between two runs.

Environment variables by name (``ENV_NAMES``) or prefix (``ENV_PREFIXES``): thread pools, visible
devices, the CUDA caching allocator, glibc malloc, a preloaded allocator. Plus what torch itself reports
(``torch.num_threads``: intra-op threads; ``torch.num_interop_threads``) and the CPUs the process may
run on (``cpus.affinity``). Values are strings, as the environment holds them.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping

ENV_NAMES: tuple[str, ...] = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                              "CUDA_VISIBLE_DEVICES", "CUDA_LAUNCH_BLOCKING", "LD_PRELOAD", "GLIBC_TUNABLES",
                              "NCCL_ALGO", "NCCL_PROTO", "TORCH_NCCL_ASYNC_ERROR_HANDLING")
ENV_PREFIXES: tuple[str, ...] = ("MALLOC_", "PYTORCH_", "KMP_", "OMP_")


def environment_knobs(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The speed-relevant variables of ``environ`` (default: this process's), sorted by name."""
    env = os.environ if environ is None else environ
    return {k: env[k] for k in sorted(env) if k in ENV_NAMES or k.startswith(ENV_PREFIXES)}


def run_environment() -> dict[str, str]:
    """``environment_knobs()`` plus torch's thread counts (when torch is loaded) and the CPU affinity."""
    out = environment_knobs()
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch.num_threads"] = str(torch.get_num_threads())
        out["torch.num_interop_threads"] = str(torch.get_num_interop_threads())
    if hasattr(os, "sched_getaffinity"):
        out["cpus.affinity"] = str(len(os.sched_getaffinity(0)))
    return out
