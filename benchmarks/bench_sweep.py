"""A full dashboard sweep (3 methods x 6 sparsities + 2:4, dense baseline) and what the cache saves.

Uses ``wanda_viz.analysis.sweep.run_sweep`` with a fresh cache folder: run 1 computes every point
(cold), run 2 repeats the same sweep (every point read from disk), run 3 extends it by one
sparsity (only the new points are computed). Perplexity is on a fixed slice (``--max-windows``
windows of ``--seq-len`` tokens). One pass per run: a cold sweep cannot be repeated without
emptying the cache, so this is one sample, not a median (re-run to see the spread).

    python benchmarks/bench_sweep.py --size demo --n-samples 16 --seq-len 128 --max-windows 8
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from wanda_viz.loading import DEMO_MODEL_DIR  # noqa: E402

METHODS = ("magnitude", "wanda", "sparsegpt")


def load_subject(size: str, args, cache_dir: Path):
    """(model, calib ids, eval ids, fingerprint, calibration dict, eval label) or None."""
    from wanda_viz.points import model_fingerprint
    if size == "demo":
        if not (DEMO_MODEL_DIR / "config.json").is_file():
            return None
        from wanda_viz import get_calibration_ids, get_eval_ids, load_model
        from wanda_viz.layers import model_context_length
        model, tokenizer = load_model(DEMO_MODEL_DIR, device="cpu", dtype="float32")
        args.seq_len = min(args.seq_len, model_context_length(model) or args.seq_len)
        calib, desc = get_calibration_ids(tokenizer, source=common.calibration_source(),
                                          n_samples=args.n_samples, seq_len=args.seq_len)
        eval_ids, label = get_eval_ids(tokenizer, source="wikitext2")
        fingerprint = model_fingerprint(DEMO_MODEL_DIR, cache_dir=cache_dir)
        return model, calib, eval_ids, fingerprint, desc, label
    model = common.make_llama(size)
    vocab = model.config.vocab_size
    calib = common.random_ids(args.n_samples, args.seq_len, vocab, seed=0)
    eval_ids = common.random_ids(1, args.seq_len * args.max_windows, vocab, seed=1)
    desc = {"source": "random ids", "n_samples": args.n_samples, "seq_len": args.seq_len,
            "seed": 0}
    return model, calib, eval_ids, model_fingerprint(model=model), desc, "random ids"


def _timed_sweep(run_sweep, subject, cache_dir, sparsities, args) -> tuple[float, object]:
    from wanda_viz.analysis.sweep import SweepSpec
    from wanda_viz.config import EvalConfig
    from wanda_viz.points import PointRunner, resolve_eval_setup
    model, calib, eval_ids, fingerprint, desc, label = subject
    start = time.perf_counter()
    setup = resolve_eval_setup(model, EvalConfig(seq_len=args.seq_len,
                                                 max_windows=args.max_windows),
                               eval_ids=eval_ids, eval_label=label, calib_ids=calib,
                               calibration=desc, fingerprint=fingerprint, cache_dir=cache_dir,
                               batch_size=args.batch_size)
    spec = SweepSpec(methods=METHODS, sparsities=tuple(sparsities),
                     structures=tuple(args.structures))
    table = run_sweep(PointRunner(model, setup), spec, show_progress=False)
    return time.perf_counter() - start, table


def _sums(table) -> dict:
    fresh = table[~table["cached"]]
    return {"points": len(table), "computed": int(len(fresh)), "cached": int(table["cached"].sum()),
            **{f"sum_{c}": float(fresh[c].sum()) for c in ("prune_s", "forward_s", "total_s",
                                                           "eval_s")}}


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n")[0], "bench_sweep")
    parser.add_argument("--size", default="demo", choices=["demo", *common.LLAMA_SIZES],
                        help="demo = assets/demo-model; falls back to 'tiny' when absent")
    parser.add_argument("--sparsities", nargs="+", type=float,
                        default=[0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    parser.add_argument("--extend-with", type=float, default=0.8,
                        help="sparsity added in run 3 (extension of a cached sweep)")
    parser.add_argument("--structures", nargs="+", default=["unstructured", "2:4"])
    parser.add_argument("--n-samples", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--max-windows", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="sweep cache (default: a fresh temporary folder, i.e. cold)")
    args = parser.parse_args(argv)
    common.apply_common_args(args)
    os.environ.setdefault("WANDA_VIZ_DATA", str(common.REPO_ROOT.parent / "shared" / "data"))
    machine = common.machine_info()
    protocol = {"methods": METHODS, "sparsities": args.sparsities,
                "structures": args.structures, "n_samples": args.n_samples,
                "seq_len": args.seq_len, "max_windows": args.max_windows,
                "batch_size": args.batch_size, "repeats": 1}
    from wanda_viz.analysis.sweep import run_sweep
    size = args.size
    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    subject = load_subject(size, args, cache_dir)
    if subject is None:
        print(f"{DEMO_MODEL_DIR} does not exist yet: using the random 'tiny' LLaMA")
        size, subject = "tiny", load_subject("tiny", args, cache_dir)
    protocol["seq_len"] = args.seq_len  # clipped to the demo model's context
    runs = {}
    for name, sparsities in (("cold", args.sparsities), ("warm", args.sparsities),
                             ("extend", [*args.sparsities, args.extend_with])):
        load = common.load_average()
        seconds, table = _timed_sweep(run_sweep, subject, cache_dir, sparsities, args)
        runs[name] = {"seconds": seconds, "load_average_start": load,
                      "load_average_end": common.load_average(), **_sums(table)}
        print(f"{name:6s}: {seconds:7.2f}s  {runs[name]['computed']} computed, "
              f"{runs[name]['cached']} cached", flush=True)
        if name == "cold":
            points = table.drop(columns=["key", "calibration", "eval_protocol"]).to_dict("records")
    saving = 1 - runs["warm"]["seconds"] / runs["cold"]["seconds"]
    payload = {"status": "measured", "subject": size, "cache_dir": str(cache_dir),
               "protocol": protocol, "runs": runs, "cache_saving": saving,
               "warm_speedup": runs["cold"]["seconds"] / runs["warm"]["seconds"],
               "points": points}
    print(f"cache saves {saving:.1%} of the cold sweep")
    common.write_result(args.out, "bench_sweep", payload, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
