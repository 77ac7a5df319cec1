"""Pruning time per method and structure, split as the Wanda paper does, against a forward floor.

The paper (arXiv 2306.11695, section 4.3) counts only score/mask/update time (``prune_s``) and
reports the calibration forward passes apart (``capture_s`` + ``forward_s``). The floor is the
bare calibration forward with no hooks and no statistics: the same windows through the
embeddings (``capture_layer_inputs``) and every block once (``run_layer``). The sequential
protocol runs every block twice (dense pass with statistics hooks, then the pruned pass whose
outputs feed the next block), so the 2-pass floor is reported as well.

    python benchmarks/bench_prune.py --sizes tiny medium --n-samples 16 --seq-len 128
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import torch  # noqa: E402

from wanda_viz import PruneConfig, WeightBackup, prune_model  # noqa: E402
from wanda_viz.calibration import capture_layer_inputs, run_layer  # noqa: E402
from wanda_viz.layers import find_decoder_layers  # noqa: E402
from wanda_viz.loading import DEMO_MODEL_DIR  # noqa: E402

GOAL_WANDA_OVER_FLOOR = 1.3     # Wanda total within 1.3x the bare forward floor
GOAL_MAGNITUDE_OVER_FLOOR = 0.1  # "near zero": under a tenth of the floor


@torch.no_grad()
def floor_forward(model, calib_ids: torch.Tensor, batch_size: int) -> dict:
    """Bare calibration forward (no hooks, no stats): capture, then every block twice.

    Returns seconds: capture_s, pass1_s (every block once) and pass2_s (every block again).
    """
    _, blocks = find_decoder_layers(model)
    start = time.perf_counter()
    hidden, kwargs, captured_batch = capture_layer_inputs(model, blocks[0], calib_ids,
                                                         batch_size=batch_size)
    capture_s = time.perf_counter() - start
    out = torch.empty_like(hidden)
    pass1 = pass2 = 0.0
    for block in blocks:
        start = time.perf_counter()
        run_layer(block, hidden, kwargs, captured_batch=captured_batch, batch_size=batch_size,
                  out=out)
        pass1 += time.perf_counter() - start
        start = time.perf_counter()
        run_layer(block, hidden, kwargs, captured_batch=captured_batch, batch_size=batch_size,
                  out=out)
        pass2 += time.perf_counter() - start
        hidden, out = out, hidden
    return {"capture_s": capture_s, "pass1_s": pass1, "pass2_s": pass2}


@torch.no_grad()
def plain_forward(model, calib_ids: torch.Tensor, batch_size: int) -> None:
    """The decoder trunk as Hugging Face runs it (no lm_head), for comparison with the floor."""
    base = getattr(model, model.base_model_prefix)
    for batch in calib_ids.split(batch_size):
        base(batch, use_cache=False)


def _median_dict(dicts: list[dict]) -> dict:
    keys = sorted({k for d in dicts for k in d})
    return {k: statistics.median(d.get(k, 0.0) for d in dicts) for k in keys}


def load_subject(name: str, args) -> tuple[torch.nn.Module, torch.Tensor, dict] | None:
    """(model, calibration ids, description) for a size name or "demo"; None if unavailable."""
    if name == "demo":
        if not (DEMO_MODEL_DIR / "config.json").is_file():
            return None
        from wanda_viz import get_calibration_ids, load_model
        from wanda_viz.layers import model_context_length
        model, tokenizer = load_model(DEMO_MODEL_DIR, device="cpu", dtype="float32")
        seq_len = min(args.seq_len, model_context_length(model) or args.seq_len)
        try:
            ids, desc = get_calibration_ids(tokenizer, source=common.calibration_source(),
                                            n_samples=args.n_samples, seq_len=seq_len)
        except (OSError, ValueError):
            ids = common.random_ids(args.n_samples, seq_len, model.config.vocab_size)
            desc = {"source": "random ids", "n_samples": args.n_samples, "seq_len": seq_len}
        return model, ids, {"model": str(DEMO_MODEL_DIR.name), **desc}
    model = common.make_llama(name)
    ids = common.random_ids(args.n_samples, args.seq_len, model.config.vocab_size)
    return model, ids, {"model": f"random LLaMA {name}", **common.LLAMA_SIZES[name],
                        "source": "random ids", "n_samples": args.n_samples,
                        "seq_len": args.seq_len}


def _floor(model, ids, batch_size: int) -> dict:
    f = floor_forward(model, ids, batch_size)
    return {**f, "floor_1pass_s": f["capture_s"] + f["pass1_s"],
            "floor_2pass_s": f["capture_s"] + f["pass1_s"] + f["pass2_s"]}


def bench_subject(model, ids, args) -> dict:
    """Every prune run is paired with a floor run just before it (load drifts hit both alike);
    ratios are medians of the per-pair ratios."""
    n_params = sum(p.numel() for p in model.parameters())
    _floor(model, ids, args.batch_size)  # warm-up
    floors = []
    plain = common.median_time(lambda: plain_forward(model, ids, args.batch_size),
                               repeats=args.repeats)["median"]
    backup = WeightBackup(model)
    runs = {}
    for method in args.methods:
        for structure in args.structures:
            config = PruneConfig(method=method, sparsity=0.5, structure=structure,
                                 batch_size=args.batch_size)
            timings = []
            for i in range(args.repeats + 1):  # first run is a warm-up
                backup.restore(model)
                floor = _floor(model, ids, args.batch_size)
                backup.restore(model)
                result = prune_model(model, ids, config)
                if i:
                    floors.append(floor)
                    t = dict(result.timings)
                    t["forward_total_s"] = t.get("capture_s", 0.0) + t.get("forward_s", 0.0)
                    t["total_over_floor_1pass"] = t["total_s"] / floor["floor_1pass_s"]
                    t["total_over_floor_2pass"] = t["total_s"] / floor["floor_2pass_s"]
                    t["prune_over_floor_1pass"] = t.get("prune_s", 0.0) / floor["floor_1pass_s"]
                    t["forward_over_floor_2pass"] = t["forward_total_s"] / floor["floor_2pass_s"]
                    t["paired_floor_1pass_s"] = floor["floor_1pass_s"]
                    timings.append(t)
            med = _median_dict(timings)
            med["sparsity"] = result.overall_sparsity
            runs[f"{method} {structure}"] = {"median": med, "repeats": timings}
            print(f"  {method:9s} {structure:12s} total {med['total_s']:.3f}s "
                  f"prune {med.get('prune_s', 0):.3f}s fwd {med['forward_total_s']:.3f}s "
                  f"= {med['total_over_floor_1pass']:.2f}x floor "
                  f"({med['total_over_floor_2pass']:.2f}x 2-pass floor)", flush=True)
    backup.restore(model)
    floor = _median_dict(floors)
    floor["plain_hf_forward_s"] = plain
    return {"params": n_params, "floor": floor, "floor_repeats": floors, "runs": runs}


def _goals(subjects: dict) -> dict:
    goals = {}
    for name, sub in subjects.items():
        runs = sub.get("runs", {})
        if "wanda unstructured" in runs:
            ratio = runs["wanda unstructured"]["median"]["total_over_floor_1pass"]
            goals[f"{name}: wanda total <= {GOAL_WANDA_OVER_FLOOR}x floor"] = {
                "value": round(ratio, 3), "met": ratio <= GOAL_WANDA_OVER_FLOOR}
        if "magnitude unstructured" in runs:
            ratio = runs["magnitude unstructured"]["median"]["total_over_floor_1pass"]
            goals[f"{name}: magnitude total <= {GOAL_MAGNITUDE_OVER_FLOOR}x floor"] = {
                "value": round(ratio, 3), "met": ratio <= GOAL_MAGNITUDE_OVER_FLOOR}
    return goals


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n")[0], "bench_prune")
    parser.add_argument("--sizes", nargs="+", default=["demo", "tiny", "medium"],
                        choices=["demo", *common.LLAMA_SIZES],
                        help="demo = assets/demo-model (skipped with a note when absent)")
    parser.add_argument("--methods", nargs="+", default=["magnitude", "wanda", "sparsegpt"])
    parser.add_argument("--structures", nargs="+", default=["unstructured", "2:4"])
    parser.add_argument("--n-samples", type=int, default=16, help="calibration windows")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per window")
    parser.add_argument("--batch-size", type=int, default=8, help="PruneConfig.batch_size")
    args = parser.parse_args(argv)
    common.apply_common_args(args)
    os.environ.setdefault("WANDA_VIZ_DATA", str(common.REPO_ROOT.parent / "shared" / "data"))
    machine = common.machine_info()
    subjects = {}
    for name in args.sizes:
        loaded = load_subject(name, args)
        if loaded is None:
            subjects[name] = {"skipped": f"{DEMO_MODEL_DIR} does not exist yet"}
            print(f"{name}: skipped ({subjects[name]['skipped']})")
            continue
        model, ids, desc = loaded
        print(f"{name}: {desc['model']} calib {tuple(ids.shape)}", flush=True)
        subjects[name] = {"subject": desc, "load_average_start": common.load_average(),
                          **bench_subject(model, ids, args)}
        subjects[name]["load_average_end"] = common.load_average()
        del model
    payload = {"protocol": {"sparsity": 0.5, "batch_size": args.batch_size,
                            "repeats": args.repeats, "warmup": 1,
                            "timer": "PruneResult.timings (perf_counter), median of repeats",
                            "floor": "capture_layer_inputs + run_layer per block, no hooks; "
                                     "measured right before every prune run",
                            "ratios": "median over repeats of total / paired floor"},
               "subjects": subjects, "goals": _goals(subjects)}
    common.write_result(args.out, "bench_prune", payload, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
