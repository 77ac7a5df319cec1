"""Render assets/demo-model/README.md (the model card) from measurements.json.

Every number in the card comes from ``measure_demo_model.py`` (measurements.json) and from the
training run's ``training_log.json``; nothing is typed in by hand.

    python scripts/demo_model_card.py [--model assets/demo-model]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

SAMPLE_PROMPTS = ("Once upon a time", "The old man said")  # as in measure_demo_model.py

CARD_HEADER = """---
license: mit
language: en
library_name: transformers
pipeline_tag: text-generation
tags: [llama, tiny, pruning, wanda, demo]
---
# wanda-viz demo model: a {params:.2f}M-parameter LLaMA trained on public-domain prose

The embedded default model of [wanda-viz](../../README.md): small enough to ship in the repository
(fp16 weights, {weight_mb:.1f} MB) and to prune on a 2-vCPU machine in seconds, trained by this
project so the dashboard works offline. It is a teaching model, not a useful language model.
"""


def _table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(title for _, title in columns) + " |"
    rule = "|" + "---|" * len(columns)
    body = ["| " + " | ".join(_fmt(row.get(key)) for key, _ in columns) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def _ppl(grid: list[dict], method: str, sparsity: float, key: str) -> float:
    return next(r[key] for r in grid if r["method"] == method and r["sparsity"] == sparsity
                and r["structure"] == "unstructured")


def _takeaway(report: dict) -> str:
    """Wanda vs magnitude at 60% for each calibration text, on each evaluation text (computed)."""
    lines = []
    for run in [report, *report.get("extra_calibrations", [])]:
        grid, source = run["grid"], run["calibration"]["source"]
        pairs = [f"{label} {_ppl(grid, 'wanda', 0.6, key):.1f} vs {_ppl(grid, 'magnitude', 0.6, key):.1f}"
                 for key, label in (("wikitext2_test", "WikiText-2"), ("heldout_prose", "prose"))]
        lines.append(f"- calibrated on {source}: Wanda vs magnitude at 60%: " + "; ".join(pairs) + ".")
    return ("Wanda's activation statistic comes from the calibration text, so on this tiny model "
            "the gap to magnitude depends on whether calibration matches the evaluated text "
            "(perplexity, lower is better):\n" + "\n".join(lines))


def _grid_table(grid: list[dict]) -> str:
    return _table(grid, [("method", "method"), ("structure", "structure"), ("sparsity", "sparsity"),
                         ("wikitext2_test", "WikiText-2 test"), ("heldout_prose", "held-out prose"),
                         ("prune_s", "score/mask/update s")])


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if value < 1000 else f"{value:.0f}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _training_section(train: dict) -> str:
    cfg = train.get("config", train)
    lines = ["## Training", "",
             f"- Architecture: `LlamaForCausalLM`, {cfg.get('n_layers')} layers, hidden "
             f"{cfg.get('hidden_size')}, {cfg.get('n_heads')} heads, MLP {cfg.get('intermediate_size')}, "
             f"context {cfg.get('seq_len')}, tied embeddings; byte-level BPE tokenizer with "
             f"{cfg.get('vocab_size')} tokens trained on the same text.",
             f"- Parameters: {train.get('params', 0):,}.",
             f"- Data: every `*.txt` of `shared/data/corpus/` (public-domain Project Gutenberg books, "
             "State of the Union addresses, Tiny Shakespeare, a TinyStories excerpt; see that "
             "folder's SOURCES.md), minus the last "
             f"{cfg.get('holdout_frac', 0.01):.0%} of every file, held out for evaluation. "
             "WikiText is never trained on.",
             f"- Tokens seen: {train.get('tokens_seen', 0):,}; wall time "
             f"{train.get('train_wall_time_s', 0) / 60:.0f} min on a shared "
             "2-vCPU CPU machine (fp32, 1 thread for most of the run); final training loss "
             f"{train.get('final_train_loss', float('nan')):.3f}.",
             f"- Optimiser: AdamW, peak lr {cfg.get('lr')}, warmup {cfg.get('warmup_steps')} steps, "
             f"cosine decay to {cfg.get('min_lr_ratio')} x, weight decay {cfg.get('weight_decay')} on "
             "linear weights only, gradient clipping 1.0, seed 0.",
             "- Reproduce: `python scripts/train_demo_model.py --data-dir ../shared/data "
             "--time-budget 100 --seed 0` (the shipped run; it was interrupted twice and continued "
             "with `--resume`, which restores the schedule and data order exactly: last command "
             f"`{train.get('command', '')}`). A wall-clock budget makes the token count depend "
             f"on the machine; `--max-tokens {train.get('tokens_seen', 0)}` fixes it instead.", ""]
    return "\n".join(lines)


def render(report: dict) -> str:
    train = report["training"]
    weight_mb = train.get("weights_bytes", 0) / 1e6
    parts = [CARD_HEADER.format(params=train.get("params", 0) / 1e6, weight_mb=weight_mb),
             _training_section(train)]
    windows, total = report["eval_windows"], report["eval_windows_total"]
    dense = report["dense_full"]
    calib = report["calibration"]
    parts += ["## Measured facts", "",
              f"Protocol: perplexity = exp(mean next-token NLL) over non-overlapping windows of "
              f"{report['seq_len']} tokens (the reference protocol). Calibration for pruning: "
              f"{calib['n_samples']} windows of {calib['seq_len']} tokens from {calib['source']} "
              f"(seed {calib['seed']}, reference sampler). Command: "
              "`python scripts/measure_demo_model.py --data-dir ../shared/data"
              + (f" --max-eval-windows {report.get('max_eval_windows')}`"
                 if report.get("max_eval_windows") else "`") + ".", "",
              f"Dense perplexity: **{dense['wikitext2_test']:.2f}** on WikiText-2 raw test "
              f"({total['wikitext2_test']} windows; out of domain: the model never saw Wikipedia), "
              f"**{dense['heldout_prose']:.2f}** on the held-out prose ({total['heldout_prose']} "
              "windows).", "",
              "### Pruning (perplexity after pruning every linear layer of every block)", "",
              f"WikiText-2 test on {windows['wikitext2_test']} of {total['wikitext2_test']} windows, "
              f"held-out prose on {windows['heldout_prose']} of {total['heldout_prose']} windows.", "",
              _grid_table(report["grid"]), "",
              "### Outlier features (dense model, calibration windows)", "",
              "Per block: the three largest residual-stream channels (max |h| over all tokens), "
              "the median channel, and for each linear layer the largest input-channel norm "
              "sqrt(input_sq_norm) divided by the median one (the factor Wanda multiplies |W| by).", "",
              _table([{**r, "ratios": ", ".join(f"{k} {v}" for k, v in
                                                r["input_norm_max_over_median"].items())}
                      for r in report["outliers"]],
                     [("block", "block"), ("top_channels", "top channels"),
                      ("top_magnitudes", "top-3 max abs h"), ("median_magnitude", "median channel"),
                      ("ratios", "input-norm max / median per layer")]), "",
              ]
    for extra in report.get("extra_calibrations", []):
        info = extra["calibration"]
        parts += [f"### Pruning calibrated on {info['source']} ({info['n_samples']} x "
                  f"{info['seq_len']} tokens, seed {info['seed']})", "",
                  "Same protocol and evaluation windows as above; only the calibration text "
                  "differs (training-distribution prose, as the reference calibrates on C4).", "",
                  _grid_table(extra["grid"]), ""]
    parts += ["### What this shows", "", _takeaway(report), ""]
    parts += ["## Samples (greedy, 40 new tokens)", ""]
    parts += [f"- {json.dumps(prompt)} -> {json.dumps(text)}"
              for prompt, text in zip(SAMPLE_PROMPTS, report.get("samples", []))]
    parts += ["", "## Limitations", "",
              "Tiny and briefly trained: it writes English-like prose with frequent nonsense, "
              "knows no facts, and its outlier features are far weaker than a 7B model's. "
              "Use it to learn and demo pruning, not to generate text.", ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(Path(__file__).resolve().parent.parent
                                               / "assets" / "demo-model"))
    args = parser.parse_args(argv)
    folder = Path(args.model)
    report = json.loads((folder / "measurements.json").read_text())
    report["extra_calibrations"] = [json.loads(p.read_text())
                                    for p in sorted(folder.glob("measurements_*.json"))]
    (folder / "README.md").write_text(render(report))


if __name__ == "__main__":
    main()
