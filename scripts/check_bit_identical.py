"""Record, then compare, bit-level fingerprints of pruning and evaluation results across a refactor.

``record OUT.json`` writes SHA-256 hashes of the pruned weights (every parameter of the model after
pruning), of the keep-masks and the exact perplexities (``float.hex``) for the 7 tiny families x
(magnitude, Wanda, Wanda 2:4, SparseGPT, SparseGPT 4:8, Wanda + OWL, Wanda per-layer), plus a
sweep, a comparison-group ablation and a ``why`` run on the embedded demo model (tables without
timing columns). ``compare OLD.json NEW.json`` lists every entry that differs (exit code 1 if any).

Usage (from the repository root, the same machine for both runs):
    python scripts/check_bit_identical.py record /tmp/before.json
    python scripts/check_bit_identical.py record /tmp/after.json
    python scripts/check_bit_identical.py compare /tmp/before.json /tmp/after.json

The library calls are gathered in ``_run_*`` adapters: when a refactor changes a signature, only
the adapter changes, never what is computed. Each run uses a fresh temporary point cache.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wanda_viz import PruneConfig, get_calibration_ids, get_eval_ids, load_model  # noqa: E402
from wanda_viz.evaluate import perplexity  # noqa: E402
from wanda_viz.pruning import prune_model  # noqa: E402
from wanda_viz.testing import TINY_CONFIGS, TINY_VOCAB, make_tiny_model  # noqa: E402

CONFIGS = {
    "magnitude": dict(method="magnitude", sparsity=0.5),
    "wanda": dict(method="wanda", sparsity=0.5),
    "wanda 2:4": dict(method="wanda", sparsity=0.5, structure="2:4"),
    "sparsegpt": dict(method="sparsegpt", sparsity=0.5),
    "sparsegpt 4:8": dict(method="sparsegpt", sparsity=0.5, structure="4:8"),
    "wanda owl": dict(method="wanda", sparsity=0.5, owl=True),
    "wanda per-layer": dict(method="wanda", sparsity=0.5, group="layer"),
}
TIMING = ("prune_s", "forward_s", "total_s", "eval_s", "cached", "key")


def _sha(tensors) -> str:
    digest = hashlib.sha256()
    for name, tensor in tensors:
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}{data.dtype}{tuple(data.shape)}".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def _state_sha(model) -> str:
    return _sha(sorted(model.state_dict().items()))


def _tiny_entries() -> dict:
    generator = torch.Generator().manual_seed(0)
    calib_ids = torch.randint(0, TINY_VOCAB, (8, 32), generator=generator)
    eval_ids = torch.randint(0, TINY_VOCAB, (1, 32 * 6), generator=generator)
    out = {}
    for family in TINY_CONFIGS:
        for label, fields in CONFIGS.items():
            model = make_tiny_model(family)
            dense = _state_sha(model)
            result = prune_model(model, calib_ids, PruneConfig(**fields))
            out[f"{family} / {label}"] = {
                "dense": dense, "pruned": _state_sha(model),
                "masks": _sha(sorted(result.keep_masks.items())),
                "layer_sparsity": result.layer_sparsity,
                "perplexity": perplexity(model, eval_ids, 32, show_progress=False).hex()}
    return out


def _table(frame) -> list[dict]:
    keep = [c for c in frame.columns if c not in TIMING]
    rows = frame[keep].to_dict(orient="records")
    return [{k: (v.hex() if isinstance(v, float) else v) for k, v in row.items()} for row in rows]


# -- adapters: the only place that knows the analysis signatures ----------------------------------

def _runner(model, calib_ids, eval_ids, info, label, cache_dir, fingerprint=True):
    from wanda_viz.config import EvalConfig
    from wanda_viz.points import PointRunner, model_fingerprint, resolve_eval_setup
    setup = resolve_eval_setup(model, EvalConfig(seq_len=128, max_windows=4), eval_ids=eval_ids,
                               eval_label=label, calib_ids=calib_ids, calibration=info,
                               fingerprint=model_fingerprint(model=model) if fingerprint else None,
                               cache_dir=cache_dir)
    return PointRunner(model, setup)


def _run_sweep(model, calib_ids, eval_ids, info, label, cache_dir):
    from wanda_viz.analysis import SweepSpec, run_sweep
    spec = SweepSpec(methods=("magnitude", "wanda", "sparsegpt"), sparsities=(0.5, 0.6),
                     structures=("unstructured", "2:4"))
    return run_sweep(_runner(model, calib_ids, eval_ids, info, label, cache_dir), spec,
                     show_progress=False)


def _run_ablation(model, calib_ids, eval_ids):
    from wanda_viz.analysis import AblationSpec, group_ablation
    runner = _runner(model, calib_ids, eval_ids, None, "evaluation text", None, fingerprint=False)
    return group_ablation(runner, AblationSpec(sparsity=0.5))


def _run_why(model, tokenizer, calib_ids, eval_ids, info, label, cache_dir, thresholds):
    from wanda_viz.analysis import ActivationSpec, ChannelSpec, WhySpec, run_why
    spec = WhySpec(channels=ChannelSpec(ks=(1, 4), seeds=(0, 1)),
                   activations=ActivationSpec(*thresholds))
    return run_why(_runner(model, calib_ids, eval_ids, info, label, cache_dir), spec,
                   tokenizer=tokenizer)


def _demo_entries() -> dict:
    model, tokenizer = load_model(None, device="cpu")
    calib_ids, info = get_calibration_ids(tokenizer, source="bundled-wikitext2-valid",
                                          n_samples=16, seq_len=128, seed=0)
    eval_ids, label = get_eval_ids(tokenizer, source="bundled-wikitext2-test")
    dense = _state_sha(model)
    out = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        out["demo / sweep"] = _table(_run_sweep(model, calib_ids, eval_ids, info, label,
                                                cache_dir))
        out["demo / ablation"] = _table(_run_ablation(model, calib_ids, eval_ids))
        # The demo model has no massive activation by the paper's thresholds (100, 1000 x);
        # lower ones (5, 20 x) exercise the activation intervention too.
        for thresholds in ((100.0, 1000.0), (5.0, 20.0)):
            why = _run_why(model, tokenizer, calib_ids, eval_ids, info, label, cache_dir,
                           thresholds)
            for name, (table, protocol) in why.tables().items():
                out[f"demo / why {thresholds} {name}"] = {"rows": _table(table),
                                                          "protocol": protocol}
            out[f"demo / why {thresholds} massive"] = _table(why.massive)
    out["demo / dense after"] = {"before": dense, "after": _state_sha(model)}
    return out


def record(path: str) -> None:
    torch.set_num_threads(1)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    entries = {**_tiny_entries(), **_demo_entries()}
    Path(path).write_text(json.dumps({"commit": commit.strip(), "entries": entries}, indent=1,
                                     default=str), encoding="utf-8")
    print(f"{len(entries)} entries written to {path}")


def compare(old_path: str, new_path: str) -> int:
    old = json.loads(Path(old_path).read_text())
    new = json.loads(Path(new_path).read_text())
    names = sorted(set(old["entries"]) | set(new["entries"]))
    differ = [n for n in names if old["entries"].get(n) != new["entries"].get(n)]
    for name in differ:
        print(f"DIFFERS: {name}")
    print(f"{len(names) - len(differ)}/{len(names)} entries identical "
          f"({old['commit'][:10]} vs {new['commit'][:10]})")
    return 1 if differ else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "record":
        record(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
