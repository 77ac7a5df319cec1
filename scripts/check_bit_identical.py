"""Check that this checkout prunes bit for bit like another commit (default: main).

Prunes tiny random LLaMA, OPT and GPT-2 models with every existing method and option (magnitude,
Wanda, SparseGPT; N:M; per-row / per-layer / per-input groups; the Wanda variant; OWL) in this
checkout and in ``git archive <ref>`` (a temporary copy; nothing else is touched), each in its own
process with one thread, and compares the pruned weights, keep-masks and input norms exactly.

    python scripts/check_bit_identical.py --against main
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [dict(method="magnitude"), dict(method="wanda"), dict(method="sparsegpt"),
           dict(method="wanda", structure="2:4"), dict(method="sparsegpt", structure="4:8"),
           dict(method="magnitude", group="row"), dict(method="wanda", group="layer"),
           dict(method="wanda", group="input"), dict(method="wanda", wanda_variant=True),
           dict(method="wanda", owl=True, sparsity=0.6), dict(method="magnitude", owl=True)]
FAMILIES = ("llama", "opt", "gpt2")


def prune_all(out: str) -> None:
    """Run inside the checkout under test: prune every family x config, save the results."""
    from wanda_viz.config import PruneConfig
    from wanda_viz.pruning import prune_model
    from wanda_viz.testing import make_tiny_model
    torch.set_num_threads(1)
    calib_ids = torch.randint(0, 99, (8, 32), generator=torch.Generator().manual_seed(0))
    results = {}
    for family in FAMILIES:
        for fields in CONFIGS:
            model = make_tiny_model(family)
            result = prune_model(model, calib_ids, PruneConfig(batch_size=3, **fields))
            results[f"{family} {fields}"] = (dict(model.state_dict()), result.keep_masks,
                                             result.input_sq_norm)
    torch.save(results, out)


def run_in(source: Path, out: Path) -> None:
    code = (f"import sys; sys.path.insert(0, {str(source)!r}); "
            f"sys.path.insert(0, {str(ROOT / 'scripts')!r}); "
            f"import check_bit_identical as c; c.prune_all({str(out)!r})")
    subprocess.run([sys.executable, "-c", code], cwd=source, check=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})


def compare(ours: dict, theirs: dict) -> list[str]:
    differences = []
    for key in theirs:
        for part, (a, b) in enumerate(zip(ours[key], theirs[key])):
            if a.keys() != b.keys():
                differences.append(f"{key}: part {part} names differ")
                continue
            differences += [f"{key}: {name}" for name in a if not torch.equal(a[name], b[name])]
    return differences


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", default="main", help="git ref to compare with")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "other"
        other.mkdir()
        archive = subprocess.run(["git", "archive", args.against], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(other)], input=archive, check=True)
        run_in(other, Path(tmp) / "theirs.pt")
        run_in(ROOT, Path(tmp) / "ours.pt")
        differences = compare(torch.load(Path(tmp) / "ours.pt"),
                              torch.load(Path(tmp) / "theirs.pt"))
    print("\n".join(differences) or f"bit-identical to {args.against}: {len(FAMILIES)} families x "
          f"{len(CONFIGS)} configurations (weights, keep-masks, input norms)")
    return 1 if differences else 0


if __name__ == "__main__":
    raise SystemExit(main())
