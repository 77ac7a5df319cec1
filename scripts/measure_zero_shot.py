"""Zero-shot accuracy of dense and pruned SmolLM2-135M (or any model) on the seven Wanda-paper
tasks through lm-evaluation-harness, offline; writes one JSON record and prints the tables.

States: dense, then magnitude, Wanda and SparseGPT at 50% unstructured and at 2:4, all pruned
from the same dense weights with the same calibration windows. Each task is scored on the first
``--limit`` validation items (the harness's ``limit``); the standard errors are the harness's.
Every state is a point of the one point runner (``ZeroShot`` metric, the one point cache), so an
interrupted run resumes at the first state not finished.

    python scripts/measure_zero_shot.py --limit 50 --out-json docs/zero_shot_smollm2.json
    python scripts/measure_zero_shot.py --time-only --limit 20   # dense only: a dashboard default
    python scripts/measure_zero_shot.py --render docs/zero_shot_smollm2.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from wanda_viz import get_calibration_ids, load_model  # noqa: E402
from wanda_viz.points import model_fingerprint  # noqa: E402
from wanda_viz.config import PruneConfig  # noqa: E402
from wanda_viz.data import default_calibration_source  # noqa: E402
from wanda_viz.gguf import REAL_MODEL  # noqa: E402
from wanda_viz.zeroshot import (TASK_NAMES, ZeroShotSettings, parse_tasks,  # noqa: E402
                                zero_shot_points, zero_shot_runner)

STATES = (("dense", None),
          ("magnitude 50%", PruneConfig(method="magnitude", sparsity=0.5)),
          ("Wanda 50%", PruneConfig(method="wanda", sparsity=0.5)),
          ("SparseGPT 50%", PruneConfig(method="sparsegpt", sparsity=0.5)),
          ("magnitude 2:4", PruneConfig(method="magnitude", sparsity=0.5, structure="2:4")),
          ("Wanda 2:4", PruneConfig(method="wanda", sparsity=0.5, structure="2:4")),
          ("SparseGPT 2:4", PruneConfig(method="sparsegpt", sparsity=0.5, structure="2:4")))


def _chosen(labels: str | None) -> tuple:
    if labels is None:
        return STATES
    by_label = dict(STATES)
    chosen = [label.strip() for label in labels.split(",")]
    unknown = [label for label in chosen if label not in by_label]
    if unknown:
        raise SystemExit(f"--states: unknown {unknown}; choose from {list(by_label)}")
    return tuple((label, by_label[label]) for label in chosen)


def _commit() -> str:
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=root, check=False).stdout.strip() or "unknown"


def measure_state(runner, tokenizer, label, config, settings) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    ((_, result),) = zero_shot_points(runner, [config], settings, tokenizer)
    row = {"state": label, "config": None if config is None else config.to_dict(),
           "mean_acc": result.mean_acc(), "wall_s": time.perf_counter() - wall,
           "cpu_s": time.process_time() - cpu,
           "eval_s": sum(s.seconds for s in result.scores),  # as measured, cached or not
           "cached": all(s.cached for s in result.scores), "tasks": result.task_dict()}
    print(f"{label}: mean acc {row['mean_acc']:.4f}, {row['wall_s']:.0f} s wall, "
          f"{row['cpu_s']:.0f} s CPU", flush=True)
    return row, result


def _cell(score: dict, metric: str) -> str:
    value, err = score.get(metric), score.get(f"{metric}_stderr")
    if value is None:
        return "-"
    return f"{100 * value:.1f} ± {100 * err:.1f}" if err is not None else f"{100 * value:.1f}"


def render_markdown(record: dict) -> str:
    tasks = record["settings"]["tasks"]
    lines = []
    for metric in ("acc", "acc_norm"):
        lines += [f"{metric} (%, ± harness standard error):", "",
                  "| state | " + " | ".join(tasks) + " | mean acc |" if metric == "acc" else
                  "| state | " + " | ".join(tasks) + " |",
                  "|---|" + "---|" * (len(tasks) + (metric == "acc"))]
        for row in record["states"]:
            cells = [_cell(row["tasks"][t], metric) for t in tasks]
            mean = [f"{100 * row['mean_acc']:.1f}"] if metric == "acc" else []
            lines.append(f"| {row['state']} | " + " | ".join(cells + mean) + " |")
        lines.append("")
    return "\n".join(lines)


def _write(record: dict, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(record, indent=1, default=str), encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=REAL_MODEL)
    parser.add_argument("--tasks", default=",".join(TASK_NAMES))
    parser.add_argument("--limit", type=int, default=50, help="first N items per task")
    parser.add_argument("--batch-size", type=int, default=8, help="harness requests per batch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-samples", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cache-dir", default=None, help="point cache folder")
    parser.add_argument("--time-only", action="store_true", help="dense only (a timing)")
    parser.add_argument("--states", default=None,
                        help="comma-separated state labels to run, in this order (default: all; "
                        "two processes can split the states, the cache joins them)")
    parser.add_argument("--note", default="")
    parser.add_argument("--out-json", default="docs/zero_shot_smollm2.json")
    parser.add_argument("--render", default=None, metavar="JSON")
    args = parser.parse_args(argv)
    if args.render:
        print(render_markdown(json.loads(Path(args.render).read_text(encoding="utf-8"))))
        return 0
    torch.set_num_threads(args.threads)
    settings = ZeroShotSettings(tasks=tuple(parse_tasks(args.tasks)), limit=args.limit,
                                batch_size=args.batch_size)
    model, tokenizer = load_model(args.model, device="cpu")
    states = STATES[:1] if args.time_only else _chosen(args.states)
    calib_ids, calib = None, None
    if any(c is not None and c.needs_calibration for _, c in states):
        calib_ids, calib = get_calibration_ids(
            tokenizer, source=default_calibration_source(args.data_dir), n_samples=args.n_samples,
            seq_len=args.seq_len, seed=args.seed, data_dir=args.data_dir)
    runner = zero_shot_runner(model, fingerprint=model_fingerprint(args.model, model=model),
                              calib_ids=calib_ids, calibration=calib, cache_dir=args.cache_dir)
    record = {"model": args.model, "commit": _commit(), "note": args.note,
              "settings": {"tasks": list(settings.tasks), "limit": args.limit, "num_fewshot": 0,
                           "batch_size": args.batch_size, "calibration": calib,
                           "threads": args.threads, "device": "cpu", "dtype": "float32"},
              "torch": torch.__version__, "cpu_count": os.cpu_count(),
              "platform": platform.platform(), "load_average_start": os.getloadavg(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "states": []}
    for label, config in states:
        row, result = measure_state(runner, tokenizer, label, config, settings)
        record.update(harness=result.protocol()["harness"], data=result.protocol()["data"],
                      protocol=result.protocol_text(), metrics=result.protocol()["metrics"])
        record["states"].append(row)
        record["load_average_end"] = os.getloadavg()
        _write(record, args.out_json)  # after every state: a long run keeps what it finished
    print(render_markdown(record))
    print(f"wrote {args.out_json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
