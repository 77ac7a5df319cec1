"""Wanda vs SparseGPT on a LLaMA-7B-shaped model with random weights (fp16) on a CUDA GPU.

Protocol (Wanda paper, section 4.3 / Table 5): 128 x 2048 calibration tokens, 50% unstructured;
pruning time = score/mask/update time (``prune_s``) without the calibration forward passes
(``capture_s + forward_s``, reported apart). Peak GPU memory is ``torch.cuda.max_memory_allocated``
(reset before each run). Two placements: the whole model on the GPU, and the model in host memory
with one block at a time on the GPU (``PruneConfig(offload=True, exec_device="cuda")``); they
are labelled "resident" and "offload" in the results.
The model is built directly on the GPU in fp16 (no fp32 host copy); ``--layers`` runs fewer blocks.
Random weights: the timings are representative (same shapes and FLOPs), perplexities are not.

    python benchmarks/bench_gpu.py --device cuda --layers 32
    python benchmarks/bench_gpu.py --device cuda --layers 2 --n-samples 16   # a quick look
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import torch  # noqa: E402

from wanda_viz import PruneConfig, WeightBackup, prune_model  # noqa: E402

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def build_model(args, device: torch.device):
    """A random LLaMA of the requested shape, created directly on ``device`` in ``args.dtype``."""
    from transformers import LlamaForCausalLM
    config = common.llama_config("7b", hidden_size=args.hidden, intermediate_size=args.intermediate,
                                 num_hidden_layers=args.layers, num_attention_heads=args.heads,
                                 num_key_value_heads=args.heads,
                                 max_position_embeddings=max(2048, args.seq_len))
    previous = torch.get_default_dtype()
    torch.manual_seed(0)
    try:
        torch.set_default_dtype(_DTYPES[args.dtype])
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.eval().config.use_cache = False
    return model


def run_once(model, ids, config: PruneConfig, device: torch.device) -> dict:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = prune_model(model, ids, config)
    wall = time.perf_counter() - start
    row = {**result.timings, "wall_s": wall, "sparsity": result.overall_sparsity}
    if device.type == "cuda":
        row["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        row["max_memory_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    row["forward_total_s"] = row.get("capture_s", 0.0) + row.get("forward_s", 0.0)
    print(f"  {config.label():28s} offload={config.offload!s:5s} "
          f"prune {row.get('prune_s', 0):8.2f}s"
          f"  forward {row['forward_total_s']:8.2f}s  total {row['total_s']:8.2f}s"
          + (f"  peak {row['max_memory_allocated_gib']:.1f} GiB" if "max_memory_allocated_gib"
             in row else ""), flush=True)
    return row


def run_placement(model, ids, backup, args, *, placement: str, offload: bool) -> dict:
    """Every method x structure with the model where it is now; {run name: median + repeats}."""
    device = torch.device(args.device)
    runs = {}
    for method in args.methods:
        for structure in args.structures:
            config = PruneConfig(method=method, sparsity=0.5, structure=structure,
                                 batch_size=args.batch_size, offload=offload,
                                 exec_device=args.device, store_masks=False)
            rows = []
            for _ in range(args.repeats):
                backup.restore(model)
                rows.append(run_once(model, ids, config, device))
            runs[f"{placement} {method} {structure}"] = {
                "median": {k: common.summarize([r[k] for r in rows])["median"] for k in rows[0]},
                "repeats": rows}
    return runs


def mask_time_ratios(runs: dict, placements: list[str], structures: list[str]) -> dict:
    """SparseGPT's prune_s over Wanda's, per placement and structure (the paper's comparison)."""
    ratios = {}
    for placement in placements:
        for structure in structures:
            wanda = runs.get(f"{placement} wanda {structure}")
            sgpt = runs.get(f"{placement} sparsegpt {structure}")
            if wanda and sgpt and wanda["median"].get("prune_s"):
                ratios[f"{placement} {structure}: sparsegpt/wanda prune_s"] = (
                    sgpt["median"]["prune_s"] / wanda["median"]["prune_s"])
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n")[0], "bench_gpu")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help="cpu only to check the script at tiny sizes")
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--intermediate", type=int, default=11008)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--dtype", default="float16", choices=list(_DTYPES))
    parser.add_argument("--n-samples", type=int, default=128)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--methods", nargs="+", default=["wanda", "sparsegpt"],
                        choices=["magnitude", "wanda", "sparsegpt"])
    parser.add_argument("--structures", nargs="+", default=["unstructured"])
    parser.add_argument("--no-offload", action="store_true",
                        help="skip the model-on-CPU, one-block-on-GPU placement")
    parser.set_defaults(repeats=1)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu.py needs a CUDA GPU (torch.cuda.is_available() is False on this machine)."
              " Run it on a GPU host, e.g. `python benchmarks/bench_gpu.py --device cuda "
              "--layers 2`; `--device cpu` only checks the script at tiny sizes.", file=sys.stderr)
        return 2
    common.apply_common_args(args)
    device = torch.device(args.device)
    machine = common.machine_info()
    start = time.perf_counter()
    model = build_model(args, device)
    build_s = time.perf_counter() - start
    ids = common.random_ids(args.n_samples, args.seq_len, model.config.vocab_size)
    backup = WeightBackup(model)
    placements = [("resident", False)] + ([] if args.no_offload or device.type != "cuda"
                                          else [("offload", True)])
    runs = {}
    for placement, offload in placements:
        if offload:
            model.to("cpu")
            if device.type == "cuda":
                torch.cuda.empty_cache()
        runs.update(run_placement(model, ids, backup, args, placement=placement, offload=offload))
    ratios = mask_time_ratios(runs, [p for p, _ in placements], args.structures)
    payload = {"protocol": {"shape": {"hidden": args.hidden, "intermediate": args.intermediate,
                                      "layers": args.layers, "heads": args.heads},
                            "dtype": args.dtype, "n_samples": args.n_samples,
                            "seq_len": args.seq_len, "batch_size": args.batch_size,
                            "sparsity": 0.5, "repeats": args.repeats,
                            "weights": "random (timing only)"},
               "device": args.device, "build_s": build_s,
               "params": sum(p.numel() for p in model.parameters()), "runs": runs,
               "mask_time_ratio": ratios}
    for name, value in ratios.items():
        print(f"{name} = {value:.1f}x")
    common.write_result(args.out, "bench_gpu", payload, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
