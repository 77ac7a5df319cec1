"""SparseGPT kernel time per layer shape against the time of its own matrix products (the floor).

For each shape (rows = output rows, stacked for layers sharing a Hessian; columns = in_features)
it times: the kernel as it was before (``tests/sparsegpt_oracle.py``), the current kernel, and the
floor: the products the kernel cannot avoid, i.e. the three factorisations of the damped Hessian,
per 128-column block the in-block rank-1 updates done as ONE (rows, count) x (count, count)
triangular product, and the propagation (rows, count) x (count, later columns). The difference
kernel - floor is the per-column Python and launch overhead. Random weights and a Hessian from
random correlated inputs: the time depends only on the shapes.

    python benchmarks/bench_kernel.py --threads 1 --repeats 5 --clock cpu
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import torch  # noqa: E402

from wanda_viz.pruning.sparsegpt import (inverse_hessian_cholesky, sparsegpt_prune,  # noqa: E402
                                         sparsegpt_prune_group)

sys.path.insert(0, str(common.REPO_ROOT / "tests"))
from sparsegpt_oracle import sparsegpt_prune_before  # noqa: E402

# SmolLM2-135M (hidden 576, 9 query / 3 key-value heads of 64, intermediate 1536): per block.
SMOLLM2_LAYERS = {"q_proj": (576, 576), "k_proj": (192, 576), "v_proj": (192, 576),
                  "o_proj": (576, 576), "gate_proj": (1536, 576), "up_proj": (1536, 576),
                  "down_proj": (576, 1536)}
SHARED = {"q/k/v": ("q_proj", "k_proj", "v_proj"), "gate/up": ("gate_proj", "up_proj")}


def _hessian(columns: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(columns)
    inputs = torch.randn(2048, columns, generator=generator)
    inputs = inputs @ torch.randn(columns, columns, generator=generator) / columns ** 0.5
    return 2 * inputs.t() @ inputs / 2048


CLOCK = {"cpu": time.process_time, "wall": time.perf_counter}
_clock = [time.process_time]


def _best(fn, repeats: int) -> float:
    """Median of ``repeats`` timed calls after one warm-up, on the chosen clock."""
    fn()
    times = []
    for _ in range(repeats):
        start = _clock[0]()
        fn()
        times.append(_clock[0]() - start)
    return statistics.median(times)


def floor_products(rows: int, columns: int, hessian: torch.Tensor, block: int = 128) -> None:
    Hinv = inverse_hessian_cholesky(hessian.clone())  # damping + the three factorisations
    W = torch.randn(rows, columns)
    for i1 in range(0, columns, block):
        i2 = min(i1 + block, columns)
        Err1 = W[:, i1:i2]
        torch.triu(Hinv[i1:i2, i1:i2])  # the in-block operand
        Err1.matmul(Hinv[i1:i2, i1:i2])
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])


def bench_shape(name: str, layers: tuple[str, ...], repeats: int, nm) -> dict:
    shapes = [SMOLLM2_LAYERS[layer] for layer in layers]
    columns = shapes[0][1]
    rows = sum(r for r, _ in shapes)
    hessian = _hessian(columns)
    weights = [torch.randn(r, columns, generator=torch.Generator().manual_seed(r))
               for r, _ in shapes]
    sparsity = 0.5
    before = sum(_best(lambda w=w: sparsegpt_prune_before(w, hessian.clone(), sparsity, nm=nm),
                       repeats) for w in weights)
    one_by_one = sum(_best(lambda w=w: sparsegpt_prune(w, hessian.clone(), sparsity, nm=nm),
                           repeats) for w in weights)
    group = _best(lambda: sparsegpt_prune_group(weights, hessian.clone(), sparsity, nm=nm), repeats)
    floor = _best(lambda: floor_products(rows, columns, hessian), repeats)
    row = {"layers": list(layers), "rows": rows, "columns": columns, "before_s": before,
           "now_one_by_one_s": one_by_one, "now_group_s": group, "floor_s": floor,
           "group_over_floor": group / floor, "before_over_group": before / group}
    print(f"  {name:10s} {rows:5d}x{columns:<5d} before {before * 1e3:8.1f} ms | now one by one "
          f"{one_by_one * 1e3:8.1f} ms | group {group * 1e3:8.1f} ms | floor {floor * 1e3:7.1f} ms"
          f" | group/floor {group / floor:5.2f} | before/group {before / group:5.2f}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n")[0], "bench_kernel")
    parser.add_argument("--structures", nargs="+", default=["unstructured", "2:4"])
    parser.add_argument("--clock", choices=list(CLOCK), default="cpu",
                        help="cpu = time.process_time (1 thread: robust on a shared machine)")
    args = parser.parse_args(argv)
    common.apply_common_args(args)
    _clock[0] = CLOCK[args.clock]
    machine = common.machine_info()
    groups = {**SHARED, "o_proj": ("o_proj",), "down_proj": ("down_proj",)}
    results = {}
    for structure in args.structures:
        nm = None if structure == "unstructured" else tuple(map(int, structure.split(":")))
        print(structure, flush=True)
        results[structure] = {name: bench_shape(name, layers, args.repeats, nm)
                              for name, layers in groups.items()}
        totals = {k: sum(r[k] for r in results[structure].values())
                  for k in ("before_s", "now_one_by_one_s", "now_group_s", "floor_s")}
        results[structure]["per_block_total"] = totals
        print(f"  one SmolLM2 block: before {totals['before_s']:.3f} s, now "
              f"{totals['now_group_s']:.3f} s, floor {totals['floor_s']:.3f} s", flush=True)
    payload = {"subject": "SmolLM2-135M layer shapes, random weights and Hessian",
               "protocol": {"sparsity": 0.5, "block_size": 128, "repeats": args.repeats,
                            "timer": f"{args.clock} clock, median after one warm-up"},
               "results": results}
    common.write_result(args.out, "bench_kernel", payload, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
