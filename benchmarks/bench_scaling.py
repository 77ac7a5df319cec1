"""How pruning cost grows: time and peak memory vs width, depth, n_samples and seq_len.

One factor varies at a time around a base point (random LLaMA, hidden 256, 4 layers,
16 x 128 calibration tokens). Every point runs in a fresh process (``--worker``) that prunes with
each method ``--repeats`` times (median) after a warm-up on a smoke model, resetting the
resident-memory high-water mark (VmHWM, via ``/proc/self/clear_refs``) before each method, so each
peak belongs to one method.
Writes JSON and, with plotly installed, an HTML figure next to it.

    python benchmarks/bench_scaling.py --methods wanda sparsegpt
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

BASE = {"hidden": 256, "layers": 4, "n_samples": 16, "seq_len": 128}
SWEEPS = {"hidden": [128, 256, 512], "layers": [2, 4, 8], "n_samples": [8, 16, 32],
          "seq_len": [64, 128, 256]}


def _shape(hidden: int, layers: int) -> dict:
    """LLaMA proportions: intermediate = 2.6875 x hidden (4096 -> 11008), 64-wide heads."""
    return {"hidden_size": hidden, "intermediate_size": int(hidden * 2.6875),
            "num_hidden_layers": layers, "num_attention_heads": max(1, hidden // 64)}


def worker(point: dict, methods: list[str], repeats: int) -> dict:
    from wanda_viz import PruneConfig, prune_model

    warm = common.make_llama("smoke")
    prune_model(warm, common.random_ids(2, 16, warm.config.vocab_size), PruneConfig())
    del warm
    baseline_mb = common.current_rss_mb()
    model = common.make_llama("tiny", **_shape(point["hidden"], point["layers"]))
    ids = common.random_ids(point["n_samples"], point["seq_len"], model.config.vocab_size)
    from wanda_viz import WeightBackup
    backup = WeightBackup(model)
    out = {**point, "params": sum(p.numel() for p in model.parameters()),
           "model_mb": common.model_bytes(model) / 2**20, "baseline_rss_mb": baseline_mb,
           "methods": {}}
    for method in methods:
        backup.restore(model)
        rss_before = common.current_rss_mb()
        Path("/proc/self/clear_refs").write_text("5")
        timings = []
        for _ in range(repeats):
            backup.restore(model)
            timings.append(prune_model(model, ids, PruneConfig(method=method)).timings)
        peak = common.peak_rss_mb()
        median = {k: statistics.median(t[k] for t in timings) for k in timings[0]}
        out["methods"][method] = {**median, "total_s_values": [t["total_s"] for t in timings],
                                  "peak_rss_mb": peak, "prune_overhead_mb": peak - rss_before}
    out["load_average"] = common.load_average()
    return out


def _points(factors: list[str]) -> list[dict]:
    points = []
    for factor in factors:
        for value in SWEEPS[factor]:
            point = {**BASE, factor: value, "factor": factor}
            if point not in points:
                points.append(point)
    return points


def _plot(rows: list[dict], methods: list[str], path: Path) -> Path | None:
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        return None
    factors = list(dict.fromkeys(r["factor"] for r in rows))
    fig = make_subplots(rows=2, cols=len(factors), subplot_titles=factors)
    for col, factor in enumerate(factors, 1):
        sub = [r for r in rows if r["factor"] == factor]
        for method in methods:
            x = [r[factor] for r in sub]
            fig.add_trace(go.Scatter(x=x, y=[r["methods"][method]["total_s"] for r in sub],
                                     name=f"{method} total s", legendgroup=method,
                                     showlegend=col == 1), row=1, col=col)
            fig.add_trace(go.Scatter(x=x, y=[r["methods"][method]["prune_overhead_mb"]
                                             for r in sub],
                                     name=f"{method} MiB over model", legendgroup=method,
                                     line={"dash": "dot"}, showlegend=col == 1), row=2, col=col)
    fig.update_yaxes(title_text="seconds", row=1, col=1)
    fig.update_yaxes(title_text="peak MiB above model", row=2, col=1)
    fig.update_layout(title="Pruning cost vs one factor (others at the base point)")
    fig.write_html(path, include_plotlyjs="cdn")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n")[0], "bench_scaling")
    parser.add_argument("--methods", nargs="+", default=["wanda", "sparsegpt"],
                        choices=["magnitude", "wanda", "sparsegpt"])
    parser.add_argument("--factors", nargs="+", default=list(SWEEPS), choices=list(SWEEPS))
    parser.add_argument("--point", type=str, default=None,
                        help="internal: JSON point for a worker process")
    parser.add_argument("--smoke", action="store_true",
                        help="one tiny point only (hidden 64, 2 layers, 2 x 16 tokens)")
    args = parser.parse_args(argv)
    common.apply_common_args(args)
    if args.point:
        print(json.dumps(worker(json.loads(args.point), args.methods, args.repeats)))
        return 0
    machine = common.machine_info()
    points = ([{"hidden": 64, "layers": 2, "n_samples": 2, "seq_len": 16, "factor": "hidden"}]
              if args.smoke else _points(args.factors))
    rows = []
    for point in points:
        cmd = [str(Path(__file__).resolve()), "--point", json.dumps(point), "--repeats",
               str(args.repeats), "--methods", *args.methods]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        row = common.run_isolated(cmd)
        rows.append(row)
        print(f"{point['factor']:9s} h{row['hidden']:4d} L{row['layers']:2d} "
              f"n{row['n_samples']:3d} T{row['seq_len']:4d}: " + "  ".join(
                  f"{m} {row['methods'][m]['total_s']:.2f}s "
                  f"(+{row['methods'][m]['prune_overhead_mb']:.0f} MiB)" for m in args.methods),
              flush=True)
    figure = _plot(rows, args.methods, Path(args.out).with_suffix(".html")) if rows else None
    payload = {"protocol": {"base": BASE, "sweeps": SWEEPS, "methods": args.methods,
                            "repeats": args.repeats, "timer": "median of PruneResult.timings",
                            "process": "fresh subprocess per point"},
               "rows": rows, "figure": str(figure) if figure else None}
    common.write_result(args.out, "bench_scaling", payload, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
