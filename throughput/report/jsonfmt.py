"""The summary as JSON (format documented in README, "summary.json")."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from throughput.analysis.summary import Summary
from throughput.report.views_md import memory_to_dict, operators_to_dict

SUMMARY_SCHEMA = "throughput.summary"
SUMMARY_SCHEMA_VERSION = 1


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def summary_to_dict(summary: Summary) -> dict[str, Any]:
    step_time = asdict(summary.step_time) if summary.step_time else None
    if step_time is not None and summary.step_time is not None:
        step_time["spread"] = summary.step_time.spread
    return _finite({
        "schema": SUMMARY_SCHEMA,
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "run_id": summary.run_id,
        "device": summary.device,
        "device_name": summary.device_name,
        "rank": summary.rank,
        "world_size": summary.world_size,
        "end": summary.end,
        "end_detail": summary.end_detail,
        "partial": summary.partial,
        "step_rule": summary.step_rule,
        "steps": {"total": summary.steps_total, "warmup": summary.warmup_steps,
                  "measured": summary.steps_measured},
        "micro_steps_per_step": summary.micro_steps_per_step,
        "step_time": step_time,
        "warmup_step_time": asdict(summary.warmup_step_time) if summary.warmup_step_time else None,
        "phases": [asdict(p) for p in summary.phases],
        "throughput": asdict(summary.rates),
        "mfu": asdict(summary.mfu) if summary.mfu is not None else None,
        "verdict": asdict(summary.verdict),
        "findings": [asdict(f) for f in summary.findings],
        "operators": operators_to_dict(summary.operators),
        "memory": memory_to_dict(summary.memory),
        "notes": list(summary.notes),
    })


def render_json(summary: Summary) -> str:
    return json.dumps(summary_to_dict(summary), indent=2)
