"""Markdown for benchmarks/packing.py's result dict (formatting only)."""

from __future__ import annotations

from typing import Any


def _pct(x: float) -> str:
    return f"{100 * x:.3f}%"


def _planning(cases: list[dict[str, Any]], targets: dict[str, float]) -> list[str]:
    lines = ["| data | row len | docs | rows | rows lower bound | utilization | (at the bound) | "
             "histogram BFD docs/s | exact BFD docs/s | same rows | 1 doc/row padded | dyn. pad batch 8 | "
             "streaming (buffer 1024) util. / docs/s |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cases:
        lines.append(
            f"| {c['case']} | {c['row_len']} | {c['docs']:,} | {c['rows']:,} | {c['rows_lower_bound']:,} | "
            f"{_pct(c['utilization'])} | {_pct(c['utilization_upper_bound'])} | "
            f"{c['histogram_docs_per_s'] / 1e6:.2f} M | {c['exact_bfd_docs_per_s'] / 1e6:.2f} M | "
            f"{'yes' if c['exact_bfd_same_rows'] else 'NO'} | {_pct(c['one_doc_per_row'])} | "
            f"{_pct(c['dynamic_pad_batch8'])} | {_pct(c['online_utilization'])} / "
            f"{c['online_docs_per_s'] / 1e6:.2f} M |")
    met_u = all(c["utilization"] >= targets["utilization"] for c in cases)
    met_s = all(c["histogram_docs_per_s"] >= targets["planning_docs_per_s"] for c in cases)
    lines += ["", f"Targets: utilization >= {_pct(targets['utilization'])}: {'met' if met_u else 'NOT met'} "
              f"({', '.join(_pct(c['utilization']) for c in cases)}); planning >= "
              f"{targets['planning_docs_per_s'] / 1e6:.0f} M docs/s: {'met' if met_s else 'NOT met'}."]
    return lines


def _trl(t: dict[str, Any], target: float) -> list[str]:
    if t.get("status") != "ok":
        return [f"TRL comparison: {t.get('status')}"]
    med, util, rows = t["median_s"], t["utilization"], t["rows"]
    lines = [f"TRL {t['trl_version']}, {t['docs']:,} lognormal documents ({t['tokens']:,} tokens), row length "
             f"{t['row_len']}, overflow truncate; medians of interleaved runs in one process ({t['repeats']} rounds after "
             f"a warm-up for the flat pair; {t['train_repeats']} for the training pair, ours 3 times a round).", "",
             "| start from | output (same on both sides) | ours (s) | TRL (s) | speedup | our rows / util. | "
             "TRL rows / util. |", "|---|---|---|---|---|---|---|"]
    starts = {"lists": "Python token lists", "arrow": "a built Arrow dataset"}
    outs = {"flat": "flat token ids + sequence lengths", "train": "training tensors (ids, labels, positions, cu_seqlens)"}
    for start, start_label in starts.items():
        for out, out_label in outs.items():
            key = f"{start}_{out}"
            lines.append(f"| {start_label} | {out_label} | {med['ours_' + key]:.3f} | {med['trl_' + key]:.3f} | "
                         f"{t['speedup'][key]:.1f}x | {rows['ours_' + key]:,} / {_pct(util['ours_' + key])} | "
                         f"{rows['trl_' + key]:,} / {_pct(util['trl_' + key])} |")
    verdict = ", ".join(f"{k}: {'met' if v >= target else 'NOT met'}" for k, v in t["speedup"].items())
    lines += ["", f"Target >= {target:.0f}x: {verdict}.", "",
              "Training tensors: ours come from `pack_to_tensors` as [rows, row_len] batches; TRL's from "
              "`pack_dataset` followed by its padding-free `DataCollatorForLanguageModeling` over batches of 8 rows "
              "(its route to the same tensors). Flat: ours is `pack_lengths` plus one gather; TRL's is "
              "`pack_dataset` with its columns turned into tensors. Starting from Python lists, both sides first "
              "convert every token (`Dataset.from_dict` for TRL, one flattening pass for us), which bounds the "
              "ratio. TRL packs each `map()` batch of 1000 documents separately, hence its lower utilization."]
    return lines


def render(r: dict[str, Any]) -> str:
    mode = "quick (100k lengths)" if r["quick"] else "full (1M lengths)"
    lines = ["# Packing benchmark", "", f"Mode: {mode}, seed {r['seed']}. Utilization = packed tokens / "
             "(rows x row length); '(at the bound)' is the best any packer could reach with the lower bound "
             "ceil(tokens / row length) rows. Long documents are split at the row length.", "",
             "## Planning (lengths only)", ""]
    lines += _planning(r["planning"], r["targets"])
    lines += ["", "## Token lists to packed tensors vs TRL", ""]
    lines += _trl(r["trl"], r["targets"]["speedup_vs_trl"])
    return "\n".join(lines) + "\n"
