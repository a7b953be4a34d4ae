"""Markdown for benchmarks/packing.py's result dict (formatting only)."""

from __future__ import annotations

from typing import Any


def _pct(x: float) -> str:
    return f"{100 * x:.3f}%"


def _planning(cases: list[dict[str, Any]], targets: dict[str, float]) -> list[str]:
    lines = ["| data | row len | docs | rows | rows lower bound | utilization | (at the bound) | "
             "histogram BFD docs/s | exact BFD docs/s | same rows | 1 doc/row padded | dyn. pad batch 8 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cases:
        lines.append(
            f"| {c['case']} | {c['row_len']} | {c['docs']:,} | {c['rows']:,} | {c['rows_lower_bound']:,} | "
            f"{_pct(c['utilization'])} | {_pct(c['utilization_upper_bound'])} | "
            f"{c['histogram_docs_per_s'] / 1e6:.2f} M | {c['exact_bfd_docs_per_s'] / 1e6:.2f} M | "
            f"{'yes' if c['exact_bfd_same_rows'] else 'NO'} | {_pct(c['one_doc_per_row'])} | "
            f"{_pct(c['dynamic_pad_batch8'])} |")
    met_u = all(c["utilization"] >= targets["utilization"] for c in cases)
    met_s = all(c["histogram_docs_per_s"] >= targets["planning_docs_per_s"] for c in cases)
    lines += ["", f"Targets: utilization >= {_pct(targets['utilization'])}: {'met' if met_u else 'NOT met'} "
              f"({', '.join(_pct(c['utilization']) for c in cases)}); planning >= "
              f"{targets['planning_docs_per_s'] / 1e6:.0f} M docs/s: {'met' if met_s else 'NOT met'}."]
    return lines


def _streaming(st: dict[str, Any], targets: dict[str, float]) -> list[str]:
    buffers = [r["buffer"] for r in st["cases"][0]["sweep"]]
    head = "| data | row len | " + " | ".join(f"buffer {b:,}" for b in buffers) + " | smallest buffer >= 99.9% |"
    lines = [f"`OnlinePacker` over each whole stream ({st['cases'][0]['docs']:,} documents), `extend()` in batches "
             f"of {st['batch']:,} lengths, then `flush()`; utilization / planning docs/s (median of {st['repeats']} "
             f"runs); loop compiled with numba: {'yes' if st['compiled'] else 'NO'}.", "", head,
             "|---|---|" + "---|" * (len(buffers) + 1)]
    for c in st["cases"]:
        cells = [f"{_pct(r['utilization'])} / {r['docs_per_s'] / 1e6:.2f} M" for r in c["sweep"]]
        best = c["smallest_buffer_999"]
        lines.append(f"| {c['case']} | {c['row_len']} | " + " | ".join(cells) +
                     f" | {f'{best:,}' if best else 'none up to 16,384'} |")
    b = targets["streaming_buffer"]
    at = [(c, next(r for r in c["sweep"] if r["buffer"] == b)) for c in st["cases"]]
    util = "; ".join(f"{c['case']}/{c['row_len']} {_pct(r['utilization'])} "
                     f"({'met' if r['utilization'] >= targets['utilization'] else 'NOT met'})" for c, r in at)
    speed = "; ".join(f"{c['case']}/{c['row_len']} {r['docs_per_s'] / 1e6:.2f} M wall, "
                      f"{r['cpu_docs_per_s'] / 1e6:.2f} M per CPU second "
                      f"({'met' if r['docs_per_s'] >= targets['planning_docs_per_s'] else 'NOT met'} on wall time)"
                      for c, r in at)
    lines += ["", f"Targets at buffer {b:,}: utilization >= {_pct(targets['utilization'])}: {util}. Planning >= "
              f"{targets['planning_docs_per_s'] / 1e6:.0f} M docs/s: {speed}."]
    numpy_rows = [c for c in st["cases"] if c.get("numpy_path")]
    if numpy_rows:
        lines += ["", "Without the compiled loop (numpy and the Python `exact_bfd`; the same rows), buffer 1,024, "
                  f"first {numpy_rows[0]['numpy_path']['docs']:,} documents: " + "; ".join(
                      f"{c['case']}/{c['row_len']} {c['numpy_path']['docs_per_s'] / 1e6:.2f} M docs/s"
                      for c in numpy_rows) + "."]
    return lines


def _dropin(t: dict[str, Any]) -> list[str]:
    med, util, rows, sp = t["median_s"], t["utilization"], t["rows"], t["speedup"]
    lines = ["", "### Drop-in: `throughput.packing.pack_dataset` vs `trl.pack_dataset` (strategy \"bfd\")", "",
             "Same call on the same data; both return the same kind of object with the same columns "
             "(input_ids, seq_lengths). Median of interleaved runs.", "",
             "| input | ours (s) | TRL (s) | speedup | our rows / util. | TRL rows / util. |", "|---|---|---|---|---|---|"]
    labels = {"dataset": "`Dataset` (to a packed `Dataset`)", "stream": "`IterableDataset` (every row read)"}
    for kind, label in labels.items():
        key = f"dropin_{kind}"
        lines.append(f"| {label} | {med['ours_' + key]:.3f} | {med['trl_' + key]:.3f} | {sp[key]:.1f}x | "
                     f"{rows['ours_' + key]:,} / {_pct(util['ours_' + key])} | {rows['trl_' + key]:,} / "
                     f"{_pct(util['trl_' + key])} |")
    return lines


def _flat_floors(t: dict[str, Any], target: float) -> list[str]:
    """Why the flat rows (no target) stay under ``target``: their budgets against measured floors."""
    med, f, n = t["median_s"], t.get("floor_s"), t["tokens"]
    if not f:
        return []

    def ms(x: float) -> str:
        return f"{1e3 * x:.0f} ms ({1e9 * x / n:.1f} ns a token)"

    lists_budget, arrow_budget = med["trl_lists_flat"] / target, med["trl_arrow_flat"] / target
    arrow_floor = f["ours_plan"] + f["copy_tokens"]
    if f["floor_sum"] + f["ours_plan"] >= lists_budget:
        lists_verdict = "out of reach for any packer that reads the lists"
    elif f["ours_ingest"] + f["ours_plan"] >= lists_budget:
        lists_verdict = "out of reach with our conversion (the fastest validating one we found)"
    else:
        lists_verdict = "not out of reach: the floors leave room"
    if arrow_floor >= arrow_budget:
        arrow_verdict = "out of reach for our planner"
    elif f["ours_plan"] + f["ours_gather"] >= arrow_budget:
        arrow_verdict = (f"out of reach with a numpy gather, which copies document by document ({ms(f['ours_gather'])} "
                         f"to put the {t['docs']:,} documents in row order, against {ms(f['copy_tokens'])} for one "
                         "plain copy); it would take a compiled gather")
    else:
        reached = t["speedup"]["arrow_flat"] >= target
        arrow_verdict = (f"not out of reach, our planning plus gather taking {ms(f['ours_plan'] + f['ours_gather'])}"
                         + ("" if reached else "; this run did not reach it (the rest is reading the column, and noise)"))
    return [
        "", "Flat rows (supplementary: they stop before the training tensors, and the target is not theirs). "
        f"From Python lists, {target:.0f}x over TRL's {med['trl_lists_flat']:.3f} s leaves {ms(lists_budget)} for "
        f"conversion, planning and copy together. Reading every token once (a bare `sum` over the lists) takes "
        f"{ms(f['floor_sum'])}; `np.fromiter` over them (no validation) {ms(f['floor_fromiter'])}; our validated "
        f"conversion alone (`tokens_from_docs`) {ms(f['ours_ingest'])}; our planning alone {ms(f['ours_plan'])}: "
        f"{target:.0f}x there is {lists_verdict}. TRL's time there is mostly its own conversion "
        f"(`Dataset.from_dict`: {med['trl_lists_flat'] - med['trl_arrow_flat']:.3f} s of {med['trl_lists_flat']:.3f}). "
        f"From a built Arrow dataset, {target:.0f}x leaves {ms(arrow_budget)}; our planning plus one copy of the "
        f"int64 tokens (the size of the flat output) takes {ms(arrow_floor)}: {arrow_verdict}."]


def _trl(t: dict[str, Any], target: float) -> list[str]:
    if t.get("status") != "ok":
        return [f"TRL comparison: {t.get('status')}"]
    med, util, rows = t["median_s"], t["utilization"], t["rows"]
    scratch = (f" Before every timed call (both sides, untimed) the worker touches and frees {t['scratch_mb']} MiB, "
               "so that no call pays for memory the previous one handed back to the VM's host. Torch uses one "
               "thread: TRL's collator ran 3x slower with two on this shared machine."
               if t.get("scratch_mb") else "")
    lines = [f"TRL {t['trl_version']}, {t['docs']:,} lognormal documents ({t['tokens']:,} tokens), row length "
             f"{t['row_len']}, overflow truncate; medians of interleaved runs in one process ({t['repeats']} rounds "
             f"after a warm-up for the flat pair; {t['train_repeats']} for the training pair, ours 3 times a round)."
             f"{scratch}", "", "| start from | output (same on both sides) | target | ours (s) | TRL (s) | speedup | "
             "our rows / util. | TRL rows / util. |", "|---|---|---|---|---|---|---|---|"]
    starts = {"lists": "Python token lists", "arrow": "a built Arrow dataset"}
    outs = {"train": ("training tensors (ids, labels, positions, cu_seqlens)", f">= {target:.0f}x (whole path)"),
            "flat": ("flat token ids + sequence lengths", "none (supplementary)")}
    for out, (out_label, target_label) in outs.items():
        for start, start_label in starts.items():
            key = f"{start}_{out}"
            lines.append(f"| {start_label} | {out_label} | {target_label} | {med['ours_' + key]:.3f} | "
                         f"{med['trl_' + key]:.3f} | {t['speedup'][key]:.1f}x | {rows['ours_' + key]:,} / "
                         f"{_pct(util['ours_' + key])} | {rows['trl_' + key]:,} / {_pct(util['trl_' + key])} |")
    sp = t["speedup"]
    short = {"lists": "Python lists", "arrow": "Arrow"}
    verdict = "; ".join(f"from {short[s]}: {sp[s + '_train']:.1f}x, "
                        f"{'met' if sp[s + '_train'] >= target else 'NOT met'}" for s in starts)
    lines += ["", f"Target >= {target:.0f}x on the whole path from tokens to packed training tensors: {verdict}."]
    lines += _flat_floors(t, target)
    if "ours_dropin_dataset" in med:
        lines += _dropin(t)
    lines += ["", "Training tensors: ours come from `pack_to_tensors` as [rows, row_len] batches; TRL's from "
              "`pack_dataset` followed by its padding-free `DataCollatorForLanguageModeling` over batches of 8 rows "
              "(its route to the same tensors). Flat: ours is `pack_lengths` plus one gather; TRL's is "
              "`pack_dataset` with its columns turned into tensors. TRL packs each `map()` batch of 1000 documents "
              "separately, hence its lower utilization."]
    return lines


def render(r: dict[str, Any]) -> str:
    mode = "quick (100k lengths)" if r["quick"] else "full (1M lengths)"
    lines = ["# Packing benchmark", "", f"Mode: {mode}, seed {r['seed']}. Utilization = packed tokens / "
             "(rows x row length); '(at the bound)' is the best any packer could reach with the lower bound "
             "ceil(tokens / row length) rows. Long documents are split at the row length.", "",
             "## Planning (lengths only)", ""]
    lines += _planning(r["planning"], r["targets"])
    load = r.get("load_avg")
    if load:
        lines += ["", "Load average (1, 5, 15 min) at the start: " + ", ".join(f"{x:.2f}" for x in load["start"]) +
                  "; at the end: " + ", ".join(f"{x:.2f}" for x in load["end"]) +
                  f" ({r.get('machine', {}).get('cores', '?')} cores, {r.get('machine', {}).get('cpu', '?')}; "
                  "shared with other jobs: treat times as upper bounds)."]
    lines += ["", "## Streaming", ""]
    lines += _streaming(r["streaming"], r["targets"])
    lines += ["", "## Token lists to packed tensors vs TRL", ""]
    lines += _trl(r["trl"], r["targets"]["speedup_vs_trl"])
    return "\n".join(lines) + "\n"
