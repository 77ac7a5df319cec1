"""Why DSnoT does not help Wanda on a small model: its objective against the layer output error.

For the attention layers of the first decoder blocks (the layers DSnoT refines by default; the
inputs of block 0 are the same for the dense and any pruned model, later blocks see the dense
model's inputs here), compare the Wanda mask with Wanda + DSnoT on the calibration windows:
  * mean_error: DSnoT's own objective, per output row |sum over pruned j of W_ij * s_j| (s_j: mean
    over windows of sum_t x_tj), averaged over rows;
  * output_mse: the layer's actual output error, mean over tokens and rows of (x_t . (W - W*M)_i)^2.

    OMP_NUM_THREADS=1 python scripts/dsnot_layer_errors.py     # writes the JSON and the docs table

The table goes between the ``<!-- dsnot-errors:begin -->`` / ``end`` markers of docs/methods.md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from wanda_viz import get_calibration_ids, load_model  # noqa: E402
from wanda_viz.data import default_calibration_source  # noqa: E402
from wanda_viz.gguf import REAL_MODEL  # noqa: E402
from wanda_viz.layers import find_decoder_layers, find_prunable_layers, weight_matrix  # noqa: E402
from wanda_viz.pruning.dsnot import DSnoTInputs, DSnoTSettings, dsnot_keep_mask  # noqa: E402
from wanda_viz.pruning.scores import wanda_scores  # noqa: E402
from wanda_viz.stats import CalibrationStats  # noqa: E402


def _inputs(model, calib_ids, names) -> dict[str, torch.Tensor]:
    """Each named layer's input on the calibration windows, (windows, T, in), dense model."""
    modules, seen, hooks = dict(model.named_modules()), {n: [] for n in names}, []
    for name in names:
        hooks.append(modules[name].register_forward_hook(
            lambda _m, inp, _o, name=name: seen[name].append(inp[0].detach().float())))
    try:
        with torch.no_grad():
            for window in calib_ids:
                model(window.unsqueeze(0))
    finally:
        for hook in hooks:
            hook.remove()
    return {name: torch.cat(parts) for name, parts in seen.items()}


def _errors(weight, x, keep, input_sum) -> dict:
    removed = weight * ~keep  # (out, in)
    mean_error = (removed * input_sum.reshape(1, -1)).sum(dim=1).abs().mean()
    output = x.reshape(-1, x.shape[-1]) @ removed.t()  # (tokens, out)
    return {"mean_error": float(mean_error), "output_mse": float(output.square().mean())}


def layer_report(weight, x, sparsity: float) -> dict:
    stats = CalibrationStats(x.shape[-1], "cpu", statistics=("input_moments",),
                             seq_len=x.shape[1])
    stats.add_batch(x)
    moments = stats.get("input_moments")
    wanda = wanda_scores(weight, stats.input_sq_norm)
    inputs = DSnoTInputs(weight, wanda, wanda, moments.input_sum, moments.input_var)
    masks = {"wanda": dsnot_keep_mask(inputs, sparsity, None, DSnoTSettings(), refine=False),
             "wanda + dsnot": dsnot_keep_mask(inputs, sparsity, None, DSnoTSettings())}
    report = {k: _errors(weight, x, m, moments.input_sum) for k, m in masks.items()}
    report["swapped"] = int((masks["wanda"] != masks["wanda + dsnot"]).sum()) // 2
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=REAL_MODEL)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--n-samples", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.5, 0.6])
    parser.add_argument("--out-json", default="docs/successors/dsnot-layer-errors.json")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/methods.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, tokenizer = load_model(args.model)
    calib_ids, calibration = get_calibration_ids(
        tokenizer, source=default_calibration_source(None), n_samples=args.n_samples,
        seq_len=args.seq_len, seed=0)
    prefix, blocks = find_decoder_layers(model)
    names = [name for i in range(args.blocks)
             for name in find_prunable_layers(blocks[i], f"{prefix}.{i}") if "attn" in name]
    inputs = _inputs(model, calib_ids, names)
    modules = dict(model.named_modules())
    layers = {f"{name} @ {s:.0%}": layer_report(weight_matrix(modules[name]).float(),
                                                inputs[name], s)
              for s in args.sparsity for name in names}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    record = {"model": args.model, "commit": commit, "calibration": calibration,
              "dsnot": vars(DSnoTSettings()), "layers": layers}
    Path(args.out_json).write_text(json.dumps(record, indent=1), encoding="utf-8")
    table = render(record, args.out_json)
    print(table)
    if not args.no_docs:
        docs = ROOT / "docs" / "methods.md"
        begin, end = "<!-- dsnot-errors:begin -->", "<!-- dsnot-errors:end -->"
        head, rest = docs.read_text(encoding="utf-8").split(begin, 1)
        docs.write_text(f"{head}{begin}\n{table}\n{end}{rest.split(end, 1)[1]}",
                        encoding="utf-8")
    return 0


def render(record: dict, path: str) -> str:
    lines = ["| layer | swapped pairs | DSnoT objective: Wanda -> +DSnoT | output MSE: Wanda -> "
             "+DSnoT | output MSE change |", "|---|---|---|---|---|"]
    for name, row in record["layers"].items():
        before, after = row["wanda"], row["wanda + dsnot"]
        change = after["output_mse"] / before["output_mse"] - 1
        lines.append(f"| {name} | {row['swapped']} | {before['mean_error']:.3g} -> "
                     f"{after['mean_error']:.3g} | {before['output_mse']:.3g} -> "
                     f"{after['output_mse']:.3g} | {change:+.1%} |")
    calib = record["calibration"]
    lines += ["", f"{record['model']}, commit {record['commit'][:7]}, `{path}`; calibration "
              f"{calib['source']}, {calib['n_samples']} x {calib['seq_len']} tokens; DSnoT "
              "defaults; dense inputs (`scripts/dsnot_layer_errors.py`)."]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
