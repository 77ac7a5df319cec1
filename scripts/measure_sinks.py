"""Measure where the huge activations go on a real model; write one JSON record and the figures.

Runs ``run_sinks`` (attention on the sinks per block and head, the implicit bias, the token x
channel view, the all-block interventions, the sliding-window curve, pruning meets sinks) and
writes the CLI's JSON plus the model, settings, commit, machine load and timings; then renders
every figure to PNG with the headless Chromium the browser tests use (/usr/bin/chromium through
Playwright; plotly's kaleido is not a dependency), or to HTML when no browser is available.

    python scripts/measure_sinks.py --threads 2 --out docs/sinks/smollm2-135m-sinks.json \
        --figures docs/sinks
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from wanda_viz import get_calibration_ids, get_eval_ids, load_model  # noqa: E402
from wanda_viz.analysis.sinks_run import (SinksResult, SinksSpec, export_sinks,  # noqa: E402
                                          git_commit, run_sinks)
from wanda_viz.analysis.sliding_window import SlidingWindowConfig  # noqa: E402
from wanda_viz.config import EvalConfig  # noqa: E402
from wanda_viz.figures import sinks as sink_figures  # noqa: E402
from wanda_viz.figures import sinks_text as sink_text  # noqa: E402
from wanda_viz.points import PointRunner, model_fingerprint, resolve_eval_setup  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--calib", default="wikitext2-valid", help="calibration source")
    parser.add_argument("--eval", dest="eval_source", default="bundled-wikitext2-test",
                        help="evaluation text (default: the slice shipped in assets/data)")
    parser.add_argument("--n-samples", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--max-eval-windows", type=int, default=8)
    parser.add_argument("--windows", default="16,32,64,128,256,512")
    parser.add_argument("--window-chunk", type=int, default=1024)
    parser.add_argument("--window-chunks", type=int, default=2)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--batch-size", type=int, default=4,
                        help="calibration windows per dense forward pass")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", default=None, help="point cache (default: the sweeps')")
    parser.add_argument("--out", default="docs/sinks/smollm2-135m-sinks.json")
    parser.add_argument("--figures", default="docs/sinks", help="folder for the PNG figures")
    return parser.parse_args()


def _spec(args) -> SinksSpec:
    window = SlidingWindowConfig(windows=tuple(int(w) for w in args.windows.split(",")),
                                 chunk_len=args.window_chunk, max_chunks=args.window_chunks)
    return SinksSpec(seeds=tuple(int(s) for s in args.seeds.split(",")), window=window)


def _runner(args, model, tokenizer, calib_ids, calib_info) -> PointRunner:
    """The point runner: perplexity windows of --seq-len tokens, the first --max-eval-windows."""
    eval_ids, eval_label = get_eval_ids(tokenizer, source=args.eval_source)
    evaluation = EvalConfig(source=args.eval_source, seq_len=args.seq_len,
                            max_windows=args.max_eval_windows)
    setup = resolve_eval_setup(model, evaluation, eval_ids=eval_ids, eval_label=eval_label,
                               calib_ids=calib_ids, calibration=calib_info,
                               fingerprint=model_fingerprint(args.model, model=model),
                               cache_dir=args.cache_dir, batch_size=args.batch_size)
    return PointRunner(model, setup)


def figures_of(result: SinksResult, config: SinksSpec) -> dict:
    """name -> figure, every figure of the docs page."""
    figures = {"attention": sink_figures.plot_first_token_attention(result.sinks),
               "bias": sink_figures.plot_sink_bias(result.sinks),
               "view": sink_figures.plot_token_channels(result.view),
               "pruning": sink_figures.plot_sink_pruning(result.pruning_kinds, result.sparsity,
                                                         result.pruning_protocol)}
    if result.interventions is not None:
        figures["interventions"] = sink_figures.plot_sink_interventions(
            result.interventions, result.intervention_protocol)
    if result.window is not None:
        figures["sliding_window"] = sink_figures.plot_sliding_window(result.window,
                                                                     result.window_protocol)
    return figures


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"
    return str(value)


def _markdown(table) -> str:
    """A pandas table as a markdown table (no tabulate dependency)."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |",
             "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |"
              for row in table.itertuples(index=False)]
    return "\n".join(lines)


def summary_markdown(result: SinksResult, config: SinksSpec) -> str:
    """The takeaways and tables the docs page quotes, computed from the result."""
    sinks = result.sinks
    first = sinks.first_token
    lines = ["## Takeaways (computed by scripts/measure_sinks.py)", "",
             f"- Attention: {sink_text.attention_takeaway(sinks)}",
             f"- Bias: {sink_text.bias_takeaway(sinks)}",
             f"- View: {sink_text.view_takeaway(result.view)}"]
    if result.interventions is not None:
        lines.append(f"- Interventions: {sink_text.intervention_takeaway(result.interventions)}")
    if result.window is not None:
        lines.append(f"- Sliding window: {sink_text.window_takeaway(result.window)}")
    lines += [f"- Pruning: {sink_text.pruning_takeaway(result.pruning_kinds, config.sparsity)}",
              "", "## Per block", "",
              "| block | first-token attention, mean over heads | min head | max head | "
              "bias cosine (first token) | bias cosine (rest) | first token's share of norm |",
              "|---|---|---|---|---|---|---|"]
    for i, row in sinks.bias.iterrows():
        mark = " *" if i in sinks.rule.blocks else ""
        lines.append(f"| {i}{mark} | {float(first[i].mean()):.1%} | {float(first[i].min()):.1%} "
                     f"| {float(first[i].max()):.1%} | {row['sink_cosine']:.3f} | "
                     f"{row['rest_cosine']:.3f} | {row['sink_share']:.1%} |")
    lines += ["", "\\* = block output with massive activations.", ""]
    for title, table in (("Interventions", result.interventions),
                         ("Sliding window", result.window),
                         ("Pruning meets sinks, per module type", result.pruning_kinds),
                         ("Pruning meets sinks, per layer (input-side columns)",
                          result.pruning[result.pruning["source"] == "input"])):
        if table is not None:
            lines += [f"## {title}", "", _markdown(table), ""]
    return "\n".join(lines)


def save_figures(figures: dict, folder: Path, stem: str, width: int = 1000) -> list[Path]:
    """PNG through headless Chromium when available, else standalone HTML files."""
    folder.mkdir(parents=True, exist_ok=True)
    if not CHROMIUM.exists():
        paths = [folder / f"{stem}-{name}.html" for name in figures]
        for path, fig in zip(paths, figures.values()):
            fig.write_html(path, include_plotlyjs="cdn")
        return paths
    from playwright.sync_api import sync_playwright
    paths = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": 800})
        for name, fig in figures.items():
            fig = fig.update_layout(width=width)
            page.set_content(fig.to_html(include_plotlyjs=True, full_html=True))
            page.wait_for_selector(".main-svg")
            path = folder / f"{stem}-{name}.png"
            page.locator(".plotly-graph-div").screenshot(path=str(path))
            paths.append(path)
        browser.close()
    return paths


def main() -> None:
    args = _arguments()
    torch.set_num_threads(args.threads)
    config = _spec(args)
    start_load = os.getloadavg()
    model, tokenizer = load_model(args.model, device="cpu")
    calib_ids, calib_info = get_calibration_ids(tokenizer, source=args.calib,
                                                n_samples=args.n_samples, seq_len=args.seq_len)
    runner = _runner(args, model, tokenizer, calib_ids, calib_info)
    setup = runner.setup
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_sinks(runner, config, tokenizer=tokenizer, model_name=args.model)
    extra = {"model": args.model, "calibration": calib_info, "evaluation": setup.eval_label,
             "eval_setup": {"seq_len": setup.seq_len, "max_windows": setup.max_windows,
                            "batch_size": setup.batch_size},
             "commit": git_commit(), "script": "scripts/measure_sinks.py " + " ".join(sys.argv[1:]),
             "threads": args.threads, "machine": platform.platform(),
             "load_average_start": start_load, "load_average_end": os.getloadavg(),
             "wall_s": round(time.perf_counter() - wall, 1),
             "cpu_s": round(time.process_time() - cpu, 1)}
    path = export_sinks(result, config, args.out, extra=extra)
    print(f"wrote {path}")
    summary = path.with_name(f"{path.stem}-summary.md")
    summary.write_text(summary_markdown(result, config) + "\n", encoding="utf-8")
    print(f"wrote {summary}")
    for figure in save_figures(figures_of(result, config), Path(args.figures),
                               Path(args.out).stem):
        print(f"wrote {figure}")


if __name__ == "__main__":
    main()
