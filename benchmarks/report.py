"""Markdown tables from ``benchmarks/results/*.json``, for pasting into BENCHMARKS.md after a rerun.

    python benchmarks/report.py                     # every result file found
    python benchmarks/report.py --results benchmarks/results/bench_prune.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _machine(rec: dict) -> str:
    m = rec["machine"]
    v = m["versions"]
    return (f"_{m['utc']}, {m['cpu_model']}, {m['cpu_count']} cores, {m['ram_gib']} GiB, "
            f"torch threads {m['torch_threads']}, load {m['load_average']} -> "
            f"{rec['load_average_end']}, torch {v.get('torch')}, transformers "
            f"{v.get('transformers')}, gradio {v.get('gradio')}, wanda_viz {v.get('wanda_viz')}; "
            f"`{rec['command']}`_")


def _prune(rec: dict) -> list[str]:
    out = ["| model | run | total s | prune_s (score/mask/update) | forward s (capture+blocks) "
           "| total / 1-pass floor | total / 2-pass floor |", "|---|---|---|---|---|---|---|"]
    for name, sub in rec["subjects"].items():
        if "skipped" in sub:
            out.append(f"| {name} | skipped: {sub['skipped']} | | | | | |")
            continue
        f = sub["floor"]
        out.append(f"| {name} | floor (bare forward) | 1-pass {f['floor_1pass_s']:.3f} / 2-pass "
                   f"{f['floor_2pass_s']:.3f} | | HF trunk {f['plain_hf_forward_s']:.3f} "
                   "| 1.00 | |")
        for run, r in sub["runs"].items():
            m = r["median"]
            out.append(f"| {name} | {run} | {m['total_s']:.3f} | {m.get('prune_s', 0):.3f} | "
                       f"{m['forward_total_s']:.3f} | {m['total_over_floor_1pass']:.2f} | "
                       f"{m['total_over_floor_2pass']:.2f} |")
    return out


def _sequential(rec: dict) -> list[str]:
    out = ["| model | batch | samples/s (block 0) | x batch 1 | peak RSS MiB | baseline "
           "| model MiB | buffers MiB | (peak-baseline) / (2 model + buffers) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rec["rows"]:
        out.append(f"| {r['size']} | {r['batch_size']} | {r['samples_per_s']:.1f} | "
                   f"{r.get('speedup_over_batch1', 1):.2f} | {r['peak_rss_mb']:.0f} | "
                   f"{r['baseline_rss_mb']:.0f} | {r['model_mb']:.0f} | {r['buffers_mb']:.1f} | "
                   f"{r['peak_over_budget']:.2f} |")
    return out


def _eval(rec: dict) -> list[str]:
    out = ["| model | windows x seq_len | ours tok/s | HF tok/s | end-to-end ratio | paired ratio "
           "(median) | ppl ours / HF |", "|---|---|---|---|---|---|---|"]
    for name, s in rec["subjects"].items():
        if "skipped" in s:
            out.append(f"| {name} | skipped | | | | | |")
            continue
        out.append(f"| {name} | {s['n_windows']} x {s['seq_len']} | {s['ours_tokens_per_s']:.0f} | "
                   f"{s['hf_tokens_per_s']:.0f} | {s['ours_over_hf']:.3f} | "
                   f"{s.get('paired_window_ratio', {}).get('median', float('nan')):.3f} | "
                   f"{s['ppl_ours']:.4f} / "
                   f"{s['ppl_hf']:.4f} |")
    return out


def _sweep(rec: dict) -> list[str]:
    if rec.get("status") != "measured":
        return [f"status: {rec.get('status')}"]
    out = ["| run | seconds | points | computed | from cache | sum prune_s | sum forward s "
           "| sum eval s |", "|---|---|---|---|---|---|---|---|"]
    for name, r in rec["runs"].items():
        out.append(f"| {name} | {r['seconds']:.2f} | {r['points']} | {r['computed']} | "
                   f"{r['cached']} | {r['sum_prune_s']:.2f} | {r['sum_forward_s']:.2f} | "
                   f"{r['sum_eval_s']:.2f} |")
    out.append(f"\ncache saves {rec['cache_saving']:.1%} (warm run {rec['warm_speedup']:.0f}x "
               f"faster); subject: {rec['subject']}")
    return out


def _scaling(rec: dict) -> list[str]:
    methods = rec["protocol"]["methods"]
    head = "| factor | hidden | layers | n_samples | seq_len | params M | " + " | ".join(
        f"{m} total s | {m} prune_s | {m} peak over model MiB" for m in methods) + " |"
    out = [head, "|" + "---|" * (6 + 3 * len(methods))]
    for r in rec["rows"]:
        cells = " | ".join(f"{r['methods'][m]['total_s']:.2f} | {r['methods'][m]['prune_s']:.2f} | "
                           f"{r['methods'][m]['prune_overhead_mb']:.0f}" for m in methods)
        out.append(f"| {r['factor']} | {r['hidden']} | {r['layers']} | {r['n_samples']} | "
                   f"{r['seq_len']} | {r['params'] / 1e6:.1f} | {cells} |")
    return out


def _app(rec: dict) -> list[str]:
    out = [f"status: {rec.get('status')}"]
    if "cold_start_s" in rec:
        out.append(f"- cold start to first page: {rec['cold_start_s']:.2f} s")
    for key, value in (rec.get("interactions") or {}).items():
        if key.endswith("_s") or key.endswith("_per_s") or "ppl" in key:
            out.append(f"- {key}: {value:.3f}" if isinstance(value, float) else f"- {key}: {value}")
    if "client_error" in rec:
        out.append(f"- gradio_client path failed: {rec['client_error']}")
    return out


def _gpu(rec: dict) -> list[str]:
    out = ["| run | prune_s | forward s | total s | peak GiB |", "|---|---|---|---|---|"]
    for name, r in rec["runs"].items():
        m = r["median"]
        out.append(f"| {name} | {m.get('prune_s', 0):.2f} | {m['forward_total_s']:.2f} | "
                   f"{m['total_s']:.2f} | {m.get('max_memory_allocated_gib', float('nan')):.1f} |")
    out += [f"- {k}: {v:.1f}x" for k, v in rec.get("mask_time_ratio", {}).items()]
    return out


TABLES = {"bench_prune": _prune, "bench_sequential": _sequential, "bench_eval": _eval,
          "bench_sweep": _sweep, "bench_scaling": _scaling, "bench_app": _app, "bench_gpu": _gpu}


def render(path: Path) -> str:
    rec = json.loads(path.read_text())
    lines = [f"### {path.name}", "", _machine(rec), ""] + TABLES[rec["benchmark"]](rec)
    goals = rec.get("goals") or {}
    if goals:
        lines += [""] + [f"- goal {name}: {g['value']} -> {'met' if g['met'] else 'MISSED'}"
                         for name, g in goals.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", nargs="*", type=Path, default=None,
                        help="result files (default: every benchmarks/results/*.json)")
    args = parser.parse_args(argv)
    paths = args.results or sorted(RESULTS_DIR.glob("*.json"))
    for path in paths:
        print(render(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
