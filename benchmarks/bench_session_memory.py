"""Resident memory of the dashboard's pruned runs: N sessions x M runs on the largest model shape.

The model: a LLaMA-shaped stack whose prunable layers total about ``WANDA_VIZ_MAX_PARAMS`` (200M
by default on CPU): hidden 1024, intermediate 2816, 15 blocks = 192.7M prunable weights, fp32,
vocabulary 256 (so almost every parameter is prunable: the worst case for the host limit). Built
on the meta device and filled with random values (nothing is pruned for real: pruning 48 times
would take hours on a CPU). Each run gets fresh random 50% keep-masks of the right shapes; the
methods cycle magnitude, Wanda, SparseGPT (2 SparseGPT runs in 6).

Two layouts, each measured in a fresh process (RSS after the shared dense model is built is the
baseline; ``malloc_trim`` before each reading, so freed temporaries do not count):
* ``before``: what a run held until issue 11: ``PruneResult.keep_masks`` as bool tensors (1 byte
  per weight) and, for SparseGPT, a ``WeightBackup`` (a full fp32 copy of the prunable weights);
* ``after``: ``RunRecord.capture``: bit-packed masks per run and SparseGPT's kept values in the
  shared ``UPDATED_WEIGHTS`` store bounded by ``WANDA_VIZ_MAX_UPDATED_WEIGHTS_MB``.
A layout that does not fit in this machine's memory is measured with ``--before-sessions`` fewer
sessions and scaled linearly (sessions hold independent tensors); the JSON says which.
``--rebuild`` adds what an eviction costs: one generation of a SparseGPT run of the embedded demo
model (``generate_job``, 5 tokens) with its kept values in the store, and after they were evicted
(recomputed on the session's calibration windows), median of ``--repeats``.

    python benchmarks/bench_session_memory.py --sessions 8 --runs 6 --before-sessions 2
"""
from __future__ import annotations

import argparse
import ctypes
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SHAPES = {"max": dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=15,
                      num_attention_heads=16, vocab_size=256, max_position_embeddings=2048),
          "smoke": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, vocab_size=64, max_position_embeddings=128)}
METHODS = ("magnitude", "wanda", "sparsegpt")


def _trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: readings may include freed heap pages
        pass


def _dense_model(shape: dict):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(LlamaConfig(**shape), dtype=torch.float32)
    model = model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.02, generator=generator)  # touched: resident in the baseline
    return model.eval()


def _result(model, method: str, sparsity: float, seed: int):
    """A PruneResult with fresh random keep-masks of the model's prunable shapes."""
    import torch

    from wanda_viz import PruneConfig
    from wanda_viz.layers import find_decoder_layers, find_prunable_layers, weight_matrix
    from wanda_viz.result import PruneResult
    generator = torch.Generator().manual_seed(seed)
    prefix, blocks = find_decoder_layers(model)
    layers = find_prunable_layers(blocks, prefix)
    masks = {name: torch.rand(weight_matrix(layer).shape, generator=generator) >= sparsity
             for name, layer in layers.items()}
    return PruneResult(PruneConfig(method=method, sparsity=sparsity),
                       layer_shapes={n: tuple(m.shape) for n, m in masks.items()},
                       keep_masks=masks)


def _before_run(model, result) -> tuple[object, int]:
    """The pre-issue-11 record: bool masks in the result and a full weight copy (SparseGPT)."""
    from wanda_viz.layers import WeightBackup
    weights = WeightBackup(model) if result.config.method == "sparsegpt" else None
    nbytes = sum(m.numel() for m in result.keep_masks.values())  # bool: 1 byte each
    if weights is not None:
        nbytes += sum(w.numel() * w.element_size() for w in weights.weights.values())
    return (result, weights), nbytes


def _after_run(model, result) -> tuple[object, int]:
    from wanda_viz.service.session import RunRecord
    record = RunRecord.capture(model, result, 1.0)
    return record, record.nbytes


def worker(layout: str, sessions: int, runs: int, sparsity: float, size: str) -> dict:
    from wanda_viz.layers import count_prunable_params
    from wanda_viz.service.weights_store import UPDATED_WEIGHTS
    model = _dense_model(SHAPES[size])
    _trim()
    baseline = common.current_rss_mb()
    make = _before_run if layout == "before" else _after_run
    kept, own_bytes = [], 0
    for session in range(sessions):
        for run in range(runs):
            record, nbytes = make(model, _result(model, METHODS[run % 3], sparsity,
                                                 seed=session * runs + run))
            kept.append(record)
            own_bytes += nbytes
        _trim()
    retained = common.current_rss_mb() - baseline
    return {"layout": layout, "sessions": sessions, "runs_per_session": runs,
            "prunable_params": count_prunable_params(model), "baseline_rss_mb": baseline,
            "retained_rss_mb": retained, "records_mb": own_bytes / 2**20,
            "store_mb": UPDATED_WEIGHTS.nbytes / 2**20, "store_entries": len(UPDATED_WEIGHTS),
            "store_bound_mb": UPDATED_WEIGHTS.capacity() / 2**20}


def rebuild_cost(args) -> dict:
    """Generation time of a SparseGPT run with its values stored vs evicted (demo model)."""
    import time

    from wanda_viz.config import CalibConfig, EvalConfig, PruneConfig
    from wanda_viz.service import ModelSpec, get_limits, jobs
    from wanda_viz.service.limits import EMBEDDED
    from wanda_viz.service.cache import resolve_model_source
    from wanda_viz.service.weights_store import UPDATED_WEIGHTS
    limits = get_limits()
    spec = ModelSpec(resolve_model_source(EMBEDDED, limits), "demo", "cpu", "float32")
    calib = CalibConfig(source=args.calib_source, n_samples=args.n_samples, seq_len=args.seq_len)
    session = jobs.prune_job(spec, calib, (PruneConfig(method="sparsegpt", sparsity=0.5),),
                             EvalConfig(source=None), limits=limits, with_report=False)

    def generate(evict: bool) -> float:
        if evict:
            UPDATED_WEIGHTS.clear()
        start = time.perf_counter()
        jobs.generate_job(spec, session.runs, "The history of the city", limits=limits,
                          max_new_tokens=5)
        return time.perf_counter() - start

    generate(False)  # warm-up
    timings = {"stored": common.summarize([generate(False) for _ in range(args.repeats)]),
               "evicted": common.summarize([generate(True) for _ in range(args.repeats)])}
    timings["calibration"] = {"source": args.calib_source, "n_samples": args.n_samples,
                              "seq_len": args.seq_len}
    print(f"generation of a SparseGPT run (demo model): stored values "
          f"{timings['stored']['median']:.3f} s, evicted (recomputed) "
          f"{timings['evicted']['median']:.3f} s")
    return timings


def main(argv: list[str] | None = None) -> None:
    parser = common.base_parser(__doc__.splitlines()[0], "bench_session_memory")
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--runs", type=int, default=6, help="runs per session")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--size", choices=list(SHAPES), default="max",
                        help="max: ~193M prunable weights (the CPU host limit); smoke: tiny")
    parser.add_argument("--before-sessions", type=int, default=None,
                        help="measure 'before' with this many sessions and scale to --sessions "
                             "(when 'before' does not fit in memory)")
    parser.add_argument("--layouts", nargs="*", default=["before", "after"],
                        help="none: only --rebuild")
    parser.add_argument("--rebuild", action="store_true",
                        help="also time a generation of an evicted SparseGPT run (demo model)")
    parser.add_argument("--calib-source", default="wikitext2-valid", help="for --rebuild")
    parser.add_argument("--n-samples", type=int, default=32, help="for --rebuild")
    parser.add_argument("--seq-len", type=int, default=256, help="for --rebuild")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.sessions, args.runs, args.sparsity,
                                args.size)))
        return
    common.apply_common_args(args)
    machine = common.machine_info()
    results = {}
    for layout in args.layouts:  # each in a fresh process: RSS belongs to that layout alone
        measured = args.before_sessions if layout == "before" and args.before_sessions \
            else args.sessions
        row = common.run_isolated([str(Path(__file__).resolve()), "--worker", layout,
                                   "--sessions", str(measured), "--runs", str(args.runs),
                                   "--sparsity", str(args.sparsity), "--size", args.size])
        scale = args.sessions / measured
        row["scaled_to_sessions"] = args.sessions
        row["retained_rss_mb_scaled"] = row["retained_rss_mb"] * scale
        row["records_mb_scaled"] = row["records_mb"] * scale
        results[layout] = row
        print(f"{layout}: {measured} session(s) x {args.runs} runs retain "
              f"{row['retained_rss_mb']:.0f} MB RSS (records {row['records_mb']:.0f} MB, "
              f"store {row['store_mb']:.0f} MB); for {args.sessions} sessions: "
              f"{row['retained_rss_mb_scaled']:.0f} MB")
    payload = {"shape": SHAPES[args.size], "results": results}
    if args.rebuild:
        payload["rebuild"] = rebuild_cost(args)
    common.write_result(args.out, "bench_session_memory", payload, machine)


if __name__ == "__main__":
    main()
