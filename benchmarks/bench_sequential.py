"""Throughput of one decoder block (batched vs one window at a time) and peak memory of pruning.

Every configuration runs in a fresh process (``--worker``), so the resident-memory high-water
mark (VmHWM) belongs to it alone. The worker builds a random LLaMA, resets VmHWM after the build
(``/proc/self/clear_refs``; Linux; the baseline is taken after a smoke-size prune so that lazy
imports are not charged to the model), runs ``prune_model`` with that ``batch_size`` and reads the
peak, then times ``run_layer`` on block 0. Goal: peak < baseline + 2 x model bytes + the
activation buffers the sequential protocol needs (inputs and outputs of a block: 2 x n x T x d x
bytes).

    python benchmarks/bench_sequential.py --sizes tiny medium --batch-sizes 1 8 16
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import torch  # noqa: E402

GOAL_PEAK_OVER_BUDGET = 1.0  # peak - baseline < 2 x model + buffers


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def worker(args) -> dict:
    """One configuration in this (fresh) process; returns the measurements."""
    from wanda_viz import PruneConfig, prune_model
    from wanda_viz.calibration import capture_layer_inputs, run_layer
    from wanda_viz.layers import find_decoder_layers

    # Baseline: interpreter + libraries with every lazy import done (a smoke-size prune first).
    warm = common.make_llama("smoke")
    prune_model(warm, common.random_ids(2, 16, warm.config.vocab_size), PruneConfig())
    del warm
    baseline_mb = common.current_rss_mb()
    model = common.make_llama(args.sizes[0])
    ids = common.random_ids(args.n_samples, args.seq_len, model.config.vocab_size)
    model_mb = common.model_bytes(model) / 2**20
    d = model.config.hidden_size
    buffers_mb = 2 * args.n_samples * args.seq_len * d * 4 / 2**20  # fp32 inputs + outputs
    # Memory first, right after the build: nothing else has touched the allocator yet.
    rss_before_mb = common.current_rss_mb()
    reset = _reset_peak_rss()
    start = time.perf_counter()
    prune_model(model, ids, PruneConfig(method=args.method, batch_size=args.batch_sizes[0]))
    prune_s = time.perf_counter() - start
    peak_mb = common.peak_rss_mb()
    # Then throughput of block 0 (zeros in dense tensors cost the same as any other value).
    _, blocks = find_decoder_layers(model)
    hidden, kwargs, captured_batch = capture_layer_inputs(model, blocks[0], ids,
                                                         batch_size=args.batch_sizes[0])
    out = torch.empty_like(hidden)
    timing = common.median_time(
        lambda: run_layer(blocks[0], hidden, kwargs, captured_batch=captured_batch,
                          batch_size=args.batch_sizes[0], out=out),
        repeats=args.repeats)
    budget_mb = baseline_mb + 2 * model_mb + buffers_mb
    return {"size": args.sizes[0], "batch_size": args.batch_sizes[0], "method": args.method,
            "n_samples": args.n_samples, "seq_len": args.seq_len, "hidden_size": d,
            "block_s": timing, "samples_per_s": args.n_samples / timing["median"],
            "tokens_per_s": args.n_samples * args.seq_len / timing["median"],
            "prune_s": prune_s, "baseline_rss_mb": baseline_mb, "model_mb": model_mb,
            "buffers_mb": buffers_mb, "rss_before_prune_mb": rss_before_mb,
            "peak_rss_mb": peak_mb, "peak_reset_after_build": reset, "budget_mb": budget_mb,
            "prune_overhead_mb": peak_mb - rss_before_mb,
            "peak_over_budget": (peak_mb - baseline_mb) / (2 * model_mb + buffers_mb),
            "torch_threads": torch.get_num_threads(), "load_average": common.load_average()}


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n")[0], "bench_sequential")
    parser.add_argument("--sizes", nargs="+", default=["tiny", "medium"],
                        choices=list(common.LLAMA_SIZES))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8, 16])
    parser.add_argument("--method", default="wanda", choices=["wanda", "sparsegpt"])
    parser.add_argument("--n-samples", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--worker", action="store_true",
                        help="internal: measure the first size/batch size in this process and "
                             "print one JSON line")
    args = parser.parse_args(argv)
    common.apply_common_args(args)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    machine = common.machine_info()
    rows = []
    for size in args.sizes:
        for batch in args.batch_sizes:
            cmd = [str(Path(__file__).resolve()), "--worker", "--sizes", size, "--batch-sizes",
                   str(batch), "--method", args.method, "--n-samples", str(args.n_samples),
                   "--seq-len", str(args.seq_len), "--repeats", str(args.repeats)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            row = common.run_isolated(cmd)
            rows.append(row)
            print(f"{size:7s} batch {batch:3d}: {row['samples_per_s']:8.1f} samples/s, "
                  f"peak {row['peak_rss_mb']:.0f} MiB (baseline {row['baseline_rss_mb']:.0f}, "
                  f"model {row['model_mb']:.0f}, buffers {row['buffers_mb']:.1f}, "
                  f"prune overhead {row['prune_overhead_mb']:.0f}) "
                  f"= {row['peak_over_budget']:.2f} of budget", flush=True)
    goals = {}
    for size in args.sizes:
        sub = [r for r in rows if r["size"] == size]
        worst = max(r["peak_over_budget"] for r in sub)
        goals[f"{size}: peak - baseline < 2 x model + buffers"] = {
            "value": round(worst, 3), "met": worst < GOAL_PEAK_OVER_BUDGET}
        one = [r for r in sub if r["batch_size"] == 1]
        if one:
            for r in sub:
                r["speedup_over_batch1"] = r["samples_per_s"] / one[0]["samples_per_s"]
    payload = {"protocol": {"n_samples": args.n_samples, "seq_len": args.seq_len,
                            "method": args.method, "repeats": args.repeats,
                            "process": "fresh subprocess per configuration; VmHWM reset after "
                                       "the model is built"},
               "rows": rows, "goals": goals}
    common.write_result(args.out, "bench_sequential", payload, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
