"""Measure the embedded demo model and write its model card (assets/demo-model/README.md).

Everything in the card comes from this script's run: dense perplexity on WikiText-2 raw test and
on the held-out prose slice of the training corpus (both by the reference protocol), the outlier
features of a dense calibration pass, and perplexity after magnitude, Wanda and SparseGPT pruning
at 50/60/70% unstructured and 2:4. Training facts come from training_log.json (train_demo_model.py).

    python scripts/measure_demo_model.py --data-dir ../shared/data
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from demo_corpus import list_corpus_files, read_corpus  # noqa: E402

from wanda_viz import (DEMO_MODEL_DIR, PruneConfig, WeightBackup, calibrate_blocks,  # noqa: E402
                       get_calibration_ids, get_eval_ids, load_model, perplexity, prune_model,
                       tokenize_text)
from wanda_viz.evaluate import count_eval_windows, generate_text  # noqa: E402

logger = logging.getLogger("measure_demo_model")
GRID = [(0.5, "unstructured"), (0.6, "unstructured"), (0.7, "unstructured"), (0.5, "2:4")]
METHODS = ("magnitude", "wanda", "sparsegpt")
SAMPLE_PROMPTS = ("Once upon a time", "The old man said")  # as in demo_model_card.py


def outlier_table(model, calib_ids: torch.Tensor) -> list[dict]:
    """Per block: residual-stream channel magnitudes and the largest input-norm ratio of its layers."""
    rows = []
    for step in calibrate_blocks(model, calib_ids, desc="dense pass"):
        channel_max = step.outputs.abs().flatten(0, 1).amax(dim=0).float()  # (hidden,)
        top = torch.topk(channel_max, 3)
        row = {"block": step.name, "top_channels": top.indices.tolist(),
               "top_magnitudes": [round(v, 2) for v in top.values.tolist()],
               "median_magnitude": round(channel_max.median().item(), 3),
               "abs_median_activation": round(step.outputs.abs().median().item(), 4)}
        ratios = {}
        for name, stats in step.stats.items():
            norm = stats.input_sq_norm.sqrt()
            ratios[name.split(".", 3)[-1]] = round((norm.max() / norm.median()).item(), 1)
        row["input_norm_max_over_median"] = ratios
        rows.append(row)
    return rows


def evaluate_grid(model, calib_ids, eval_sets: dict, seq_len: int, max_windows: int | None):
    backup = WeightBackup(model)
    rows = [{"method": "dense", "sparsity": 0.0, "structure": "-",
             **{k: perplexity(model, ids, seq_len, max_windows=max_windows)
                for k, ids in eval_sets.items()}}]
    for sparsity, structure in GRID:
        for method in METHODS:
            config = PruneConfig(method=method, sparsity=sparsity, structure=structure)
            result = prune_model(model, calib_ids, config)
            row = {"method": method, "sparsity": sparsity, "structure": structure,
                   "prune_s": round(result.timings.get("prune_s", 0.0), 3)}
            row.update({k: perplexity(model, ids, seq_len, max_windows=max_windows)
                        for k, ids in eval_sets.items()})
            logger.info("%s", row)
            rows.append(row)
            backup.restore(model)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(DEMO_MODEL_DIR))
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--n-samples", type=int, default=128)
    parser.add_argument("--max-eval-windows", type=int, default=None,
                        help="cap on perplexity windows for the pruned grid (None = all)")
    parser.add_argument("--calib-source", default="wikitext2-valid",
                        help="calibration source: wikitext2-valid or a text file (absolute or "
                        "relative to the data folder), e.g. corpus/gutenberg-pg1342-pride-and-prejudice.txt")
    parser.add_argument("--out-json", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    start = time.time()
    model, tokenizer = load_model(args.model)
    seq_len = model.config.max_position_embeddings
    train_log = json.loads((Path(args.model) / "training_log.json").read_text())
    _, heldout_docs = read_corpus(list_corpus_files(args.data_dir), train_log.get("holdout_frac", 0.01))
    eval_sets = {"wikitext2_test": get_eval_ids(tokenizer, source="wikitext2", data_dir=args.data_dir)[0],
                 "heldout_prose": tokenize_text(tokenizer, "\n\n".join(heldout_docs))}
    calib_ids, calib_info = get_calibration_ids(tokenizer, source=args.calib_source,
                                                n_samples=args.n_samples, seq_len=seq_len,
                                                data_dir=args.data_dir)
    report = {"calibration": calib_info, "seq_len": seq_len,
              "max_eval_windows": args.max_eval_windows,
              "eval_windows": {k: count_eval_windows(v.numel(), seq_len, args.max_eval_windows)
                               for k, v in eval_sets.items()},
              "eval_windows_total": {k: count_eval_windows(v.numel(), seq_len)
                                     for k, v in eval_sets.items()},
              "dense_full": {k: perplexity(model, ids, seq_len) for k, ids in eval_sets.items()},
              "outliers": outlier_table(model, calib_ids),
              "grid": evaluate_grid(model, calib_ids, eval_sets, seq_len, args.max_eval_windows),
              "samples": [generate_text(model, tokenizer, p, max_new_tokens=40).text
                          for p in SAMPLE_PROMPTS],
              "training": train_log, "measure_seconds": round(time.time() - start, 1),
              "torch_threads": torch.get_num_threads()}
    out = Path(args.out_json) if args.out_json else Path(args.model) / "measurements.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report[k] for k in ("dense_full", "grid")}, indent=2))


if __name__ == "__main__":
    main()
