"""Measure the real model (SmolLM2-135M-Instruct GGUF, or any model) and write one JSON record.

What it measures, each with its protocol:
  * load time: first load (dequantize + write the float copy, in a fresh cache folder) and second
    load (from the float copy);
  * the dashboard's first Prune on the defaults, step by step: load (cached), tokenize
    calibration and evaluation text, dense perplexity, the activation report, Wanda 50%, pruned
    perplexity;
  * perplexity, achieved sparsity and prune times of dense, magnitude, Wanda and SparseGPT at 50%
    unstructured and 2:4, and Wanda (and magnitude) per-row vs per-layer;
  * massive activations (residual stream) with their channels, positions and tokens, and LLM.int8
    outlier features (linear-layer inputs), next to what the residual stream would give.

    python scripts/measure_real_model.py --threads 2 --out-json docs/real_model_measurements.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from wanda_viz import (WeightBackup, __version__, get_calibration_ids, get_eval_ids,  # noqa: E402
                       load_model)
from wanda_viz.analysis import (agreement_takeaway, analyze_layer_scores,  # noqa: E402
                                collect_activation_report, find_massive_activations,
                                find_outlier_features, input_norm_peak, input_norm_takeaway,
                                layer_magnitude_table, outlier_takeaway, strongest_layer)
from wanda_viz.config import PruneConfig  # noqa: E402
from wanda_viz.data import default_calibration_source, default_eval_source  # noqa: E402
from wanda_viz.evaluate import count_eval_windows, perplexity, perplexity_protocol  # noqa: E402
from wanda_viz.gguf import MODEL_CACHE_ENV, REAL_MODEL  # noqa: E402
from wanda_viz.provenance import source_commit  # noqa: E402
from wanda_viz.pruning import prune_model  # noqa: E402

CONFIGS = (  # (label, config): 50% unstructured and 2:4; comparison groups as in the ablation
    ("magnitude 50% (per-layer)", PruneConfig(method="magnitude", sparsity=0.5)),
    ("magnitude 50% (per-row)", PruneConfig(method="magnitude", sparsity=0.5, group="row")),
    ("Wanda 50% (per-row)", PruneConfig(method="wanda", sparsity=0.5)),
    ("Wanda 50% (per-layer)", PruneConfig(method="wanda", sparsity=0.5, group="layer")),
    ("SparseGPT 50%", PruneConfig(method="sparsegpt", sparsity=0.5)),
    ("magnitude 2:4", PruneConfig(method="magnitude", sparsity=0.5, structure="2:4")),
    ("Wanda 2:4", PruneConfig(method="wanda", sparsity=0.5, structure="2:4")),
    ("SparseGPT 2:4", PruneConfig(method="sparsegpt", sparsity=0.5, structure="2:4")),
)


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _timed_cpu(fn, steps: dict, key: str):
    """Run fn; store its wall seconds in steps[key] and its CPU seconds in steps[key + '_cpu'].

    On a shared machine wall time is an upper bound; with one thread the CPU seconds are what an
    idle core would take (with several threads, spin-waiting under contention inflates them)."""
    cpu = time.process_time()
    value, steps[key] = _timed(fn)
    steps[key + "_cpu"] = time.process_time() - cpu
    return value


def measure_loads(model_name: str) -> tuple[dict, tuple]:
    """First load into a fresh cache folder, then a second load from the float copy."""
    record = {}
    with tempfile.TemporaryDirectory() as cache:
        previous = os.environ.get(MODEL_CACHE_ENV)
        os.environ[MODEL_CACHE_ENV] = cache
        try:
            _, record["load_first_s"] = _timed(lambda: load_model(model_name))
            loaded, record["load_second_s"] = _timed(lambda: load_model(model_name))
        finally:
            if previous is None:
                os.environ.pop(MODEL_CACHE_ENV)
            else:
                os.environ[MODEL_CACHE_ENV] = previous
    record["protocol"] = ("wall time of load_model in a new process-local cache folder: first = "
                          "dequantize GGUF + write float32 safetensors; second = read them")
    return record, loaded


def summarize_outliers(report, tokenizer) -> dict:
    """Massive activations grouped by channel, LLM.int8 features, and the residual contrast."""
    massive = find_massive_activations(report)
    by_channel = []
    for channel, rows in massive.groupby("channel"):
        by_channel.append({
            "channel": int(channel), "n_blocks": int(rows["layer"].nunique()),
            "blocks": f"{rows['block_index'].min()}-{rows['block_index'].max()}",
            "max_abs": float(rows["abs"].max()),
            "max_ratio_to_median": float(rows["ratio_to_median"].max()),
            "positions": dict(Counter(int(p) for p in rows["position"])),
            "tokens": dict(Counter(rows["token"]).most_common(5))})
    features = find_outlier_features(report)
    residual_hits = (report.channel_share >= 0.06).sum(dim=0) >= 0.25 * report.n_layers
    table = layer_magnitude_table(report)
    return {
        "massive_activations": sorted(by_channel, key=lambda r: -r["max_abs"]),
        "massive_rows": len(massive),
        "layer_table": table.round(3).to_dict(orient="records"),
        "llm_int8_features": features.drop(columns=["layers"]).round(4).to_dict(
            orient="records"),
        "llm_int8_sites": len(report.site_names),
        "residual_channels_passing_llm_int8_rule": int(residual_hits.sum()),
        "hidden_size": report.hidden_size,
        "protocol": report.protocol() + "; massive: |h| > 100 and > 1000 x block median; "
                    "LLM.int8: |x| >= 6 on >= 6% of the positions of a linear input, in >= 25% of "
                    "the decoder blocks",
    }


def summarize_highlights(model, calib_ids, report, calib) -> dict:
    """What the dashboard's tabs 2 and 3 open on: the most uneven layer, its peak input channel,
    and how often Wanda keeps what magnitude prunes there (with the takeaway sentences)."""
    layer = strongest_layer(report)
    scores = analyze_layer_scores(model, calib_ids, layer, 0.5, calibration=calib)
    pair = scores.agreement.set_index(["method_a", "method_b"]).loc[("magnitude", "wanda")]
    return {"strongest_layer": input_norm_peak(report, layer),
            "magnitude_vs_wanda": {"spearman": float(pair["spearman"]),
                                   "wanda_keeps_of_magnitude_pruned":
                                       1.0 - float(pair["share_of_a"])},
            "outlier_takeaway": outlier_takeaway(report),
            "input_norm_takeaway": input_norm_takeaway(report, layer),
            "agreement_takeaway": agreement_takeaway(scores)}


def first_prune(model, tokenizer, args, calib_source, eval_source) -> tuple[dict, tuple]:
    """The dashboard's first Prune on the defaults, step by step (model already cached)."""
    steps = {}
    _timed_cpu(lambda: load_model(args.model), steps, "load_cached_s")
    calib_ids, calib = _timed_cpu(lambda: get_calibration_ids(
        tokenizer, source=calib_source, n_samples=args.n_samples, seq_len=args.seq_len,
        seed=args.seed, data_dir=args.data_dir), steps, "calibration_tokenize_s")
    eval_ids, label = _timed_cpu(
        lambda: get_eval_ids(tokenizer, source=eval_source, data_dir=args.data_dir),
        steps, "eval_tokenize_s")
    ppl = lambda: perplexity(model, eval_ids, args.seq_len, max_windows=args.max_eval_windows)
    dense = _timed_cpu(ppl, steps, "dense_perplexity_s")
    report = _timed_cpu(lambda: collect_activation_report(
        model, calib_ids, tokenizer=tokenizer, calibration=calib, model_name=args.model),
        steps, "activation_report_s")
    backup = WeightBackup(model)
    _timed_cpu(lambda: prune_model(model, calib_ids, PruneConfig(method="wanda", sparsity=0.5),
                                   calibration=calib), steps, "wanda_prune_s")
    _timed_cpu(ppl, steps, "pruned_perplexity_s")
    backup.restore(model)
    steps["total_s"] = sum(v for k, v in steps.items() if not k.endswith("_cpu"))
    steps["total_cpu_s"] = sum(v for k, v in steps.items() if k.endswith("_cpu"))
    return steps, (calib_ids, calib, eval_ids, label, dense, report, backup)


def run_configs(model, calib_ids, calib, eval_ids, args, backup) -> list[dict]:
    rows = []
    for label, config in CONFIGS:
        result = prune_model(model, calib_ids if config.needs_calibration else None, config,
                             calibration=calib if config.needs_calibration else None)
        ppl, eval_s = _timed(lambda: perplexity(model, eval_ids, args.seq_len,
                                                max_windows=args.max_eval_windows))
        t = result.timings
        rows.append({"run": label, "method": config.method, "structure": config.structure,
                     "group": config.comparison_group, "perplexity": ppl,
                     "achieved_sparsity": result.overall_sparsity,
                     "prune_s": t.get("prune_s"), "calibration_forward_s":
                     t.get("forward_s", 0.0) + t.get("capture_s", 0.0),
                     "total_s": t.get("total_s"), "eval_s": eval_s})
        backup.restore(model)
        print(f"{label:28s} ppl {ppl:10.2f}  prune {t.get('prune_s', 0):6.2f}s", flush=True)
    return rows


def render_markdown(record: dict) -> str:
    """The README tables from a measurement record (no number typed by hand)."""
    lines = ["| run | perplexity | achieved sparsity | prune_s | calibration forward s |",
             "|---|---|---|---|---|",
             f"| dense | {record['dense_perplexity']:.2f} | 0 | - | - |"]
    for row in record.get("runs", []):
        lines.append(f"| {row['run']} | {row['perplexity']:.2f} | "
                     f"{row['achieved_sparsity']:.4f} | {row['prune_s']:.2f} | "
                     f"{row['calibration_forward_s']:.1f} |")
    calib = record["calibration"]
    lines += ["", f"Calibration: {calib['source']}, {calib['n_samples']} x {calib['seq_len']} "
              f"tokens, seed {calib['seed']}. Perplexity: {record['eval_protocol']}. "
              f"{record['timing_protocol']}. {record['note']}", ""]
    load, first = record["load"], record["first_prune"]
    lines.append(f"Load: first {load['load_first_s']:.1f} s (dequantize and write the float "
                 f"copy), second {load['load_second_s']:.1f} s (float copy, in-process). The "
                 f"dashboard's first Prune at these settings (torch threads "
                 f"{record['threads']}): "
                 + ", ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v:.1f} s"
                             for k, v in first.items() if not k.endswith("_cpu")
                             and k != "total_cpu_s")
                 + f"; CPU time of the process {first['total_cpu_s']:.1f} s.")
    out = record["outliers"]
    lines += ["", "| massive channel | blocks | max \\|h\\| | max ratio to median | "
              "positions (count) | tokens (count) |", "|---|---|---|---|---|---|"]
    for row in out["massive_activations"]:
        lines.append(f"| {row['channel']} | {row['blocks']} ({row['n_blocks']}) | "
                     f"{row['max_abs']:.0f} | {row['max_ratio_to_median']:.0f} | "
                     f"{row['positions']} | {row['tokens']} |")
    features = "; ".join(
        f"channel {f['channel']} in {f['n_layers']} of {len(out['layer_table'])} blocks, |x| up "
        f"to {f['max_abs']:.1f}, >= 6 on {f['mean_position_share']:.0%} of positions at "
        f"{len(f['sites'])} sites" for f in out["llm_int8_features"])
    lines += ["", f"LLM.int8 outlier features on the {out['llm_int8_sites']} linear-layer "
              f"inputs: {len(out['llm_int8_features'])} ({features}); the same rule on "
              f"the residual stream would pass {out['residual_channels_passing_llm_int8_rule']} "
              f"of {out['hidden_size']} channels. Protocol: {out['protocol']}."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=REAL_MODEL)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-samples", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--max-eval-windows", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calib-source", default=None, help="default: offline-aware default")
    parser.add_argument("--eval-source", default=None, help="default: offline-aware default")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--skip-configs", action="store_true", help="only loads and first prune")
    parser.add_argument("--note", default="", help="e.g. 'machine shared with other jobs'")
    parser.add_argument("--out-json", default="docs/real_model_measurements.json")
    parser.add_argument("--render", default=None, metavar="JSON",
                        help="only print the README tables of an existing record")
    args = parser.parse_args(argv)
    if args.render:
        print(render_markdown(json.loads(Path(args.render).read_text(encoding="utf-8"))))
        return 0
    torch.set_num_threads(args.threads)
    calib_source = args.calib_source or default_calibration_source(args.data_dir)
    eval_source = args.eval_source or default_eval_source(args.data_dir)
    record = {"model": args.model, "note": args.note, "torch": torch.__version__,
              "threads": args.threads, "cpu_count": os.cpu_count(),
              "platform": platform.platform(), "load_average_start": os.getloadavg(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "source": source_commit(), "wanda_viz": __version__,
              "command": "python scripts/measure_real_model.py " + " ".join(
                  sys.argv[1:] if argv is None else argv)}
    record["load"], (model, tokenizer) = measure_loads(args.model)
    print("load", record["load"], flush=True)
    record["first_prune"], state = first_prune(model, tokenizer, args, calib_source, eval_source)
    calib_ids, calib, eval_ids, label, dense, report, backup = state
    print("first prune", record["first_prune"], flush=True)
    n_windows = count_eval_windows(eval_ids.numel(), args.seq_len, args.max_eval_windows)
    record["calibration"] = calib
    record["eval_protocol"] = perplexity_protocol(
        label, args.seq_len, n_windows, count_eval_windows(eval_ids.numel(), args.seq_len))
    record["dense_perplexity"] = dense
    record["outliers"] = summarize_outliers(report, tokenizer)
    record["highlights"] = summarize_highlights(model, calib_ids, report, calib)
    if not args.skip_configs:
        record["runs"] = run_configs(model, calib_ids, calib, eval_ids, args, backup)
    record["timing_protocol"] = (
        "wall seconds with torch threads = --threads; prune_s = scores, masks and weight "
        "updates only (Wanda paper); calibration_forward_s = calibration forward passes")
    record["load_average_end"] = os.getloadavg()
    Path(args.out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out_json).write_text(json.dumps(record, indent=2, default=float), encoding="utf-8")
    print(render_markdown(record))
    print(f"wrote {args.out_json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
