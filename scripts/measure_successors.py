"""Measure Wanda's successors on the real model and write one JSON record (issue 20, item 7).

Runs, at 50% and 60% unstructured and at 2:4, on the same calibration windows and evaluation text:
magnitude, "relative importance" alone (ri), Wanda, RIA (its default per-layer threshold; per row
too), SparseGPT, and DSnoT on top of Wanda and of SparseGPT. Records perplexity, achieved
sparsity and pruning time: prune_cpu_s = CPU seconds of scores, masks, refinement and weight
updates only (the papers' "pruning time", without calibration forward passes), measured around the
pipeline's per-input-group prune call; the calibration forward passes are reported separately.

    OMP_NUM_THREADS=1 python scripts/measure_successors.py --threads 1 \\
        --out-json docs/successors/smollm2-135m.json
    python scripts/measure_successors.py --render docs/successors/smollm2-135m.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from wanda_viz import WeightBackup, get_calibration_ids, get_eval_ids, load_model  # noqa: E402
from wanda_viz.config import DSnoTSettings, PruneConfig, RiaSettings  # noqa: E402
from wanda_viz.data import default_calibration_source, default_eval_source  # noqa: E402
from wanda_viz.evaluate import count_eval_windows, perplexity, perplexity_protocol  # noqa: E402
from wanda_viz.gguf import REAL_MODEL  # noqa: E402
from wanda_viz.pruning import pipeline, prune_model  # noqa: E402

# (run name, PruneConfig fields); every run at every level of LEVELS
RUNS = (
    ("magnitude", dict(method="magnitude")),
    ("ri", dict(method="ri")),
    ("wanda", dict(method="wanda")),
    ("ria", dict(method="ria")),
    ("ria (per-row)", dict(method="ria", group="row")),
    ("sparsegpt", dict(method="sparsegpt")),
    ("wanda + dsnot", dict(method="wanda", refine="dsnot")),
    ("sparsegpt + dsnot", dict(method="sparsegpt", refine="dsnot")),
)
LEVELS = (("50%", 0.5, "unstructured"), ("60%", 0.6, "unstructured"), ("2:4", 0.5, "2:4"))


class PruneCpuClock:
    """CPU seconds spent inside the pipeline's prune calls (scores, masks, refinement, updates)."""

    def __init__(self):
        self.seconds = 0.0
        self._originals = {}

    def _wrap(self, fn):
        def timed(*args, **kwargs):
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - start
        return timed

    def __enter__(self):
        for name in ("prune_shared_input_layers", "refine_shared_input_layers"):
            self._originals[name] = getattr(pipeline, name)
            setattr(pipeline, name, self._wrap(self._originals[name]))
        return self

    def __exit__(self, *exc):
        for name, fn in self._originals.items():
            setattr(pipeline, name, fn)


def git_commit() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout
    return {"commit": git("rev-parse", "HEAD").strip(),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no").strip())}


def run_one(model, calib_ids, eval_ids, config: PruneConfig, args) -> dict:
    cpu = time.process_time()
    with PruneCpuClock() as clock:
        result = prune_model(model, calib_ids if config.needs_calibration else None, config)
    prune_total_cpu = time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    ppl = perplexity(model, eval_ids, args.seq_len, max_windows=args.max_eval_windows,
                     show_progress=False)
    t = result.timings
    return {"perplexity": ppl, "achieved_sparsity": result.overall_sparsity,
            "prune_cpu_s": clock.seconds, "prune_s": t.get("prune_s", 0.0),
            "calibration_forward_s": t.get("forward_s", 0.0) + t.get("capture_s", 0.0),
            "total_s": t.get("total_s", 0.0), "total_cpu_s": prune_total_cpu,
            "eval_s": time.perf_counter() - start, "eval_cpu_s": time.process_time() - cpu}


def run_all(model, calib_ids, eval_ids, args) -> list[dict]:
    backup, rows = WeightBackup(model), []
    selected = [run for run in RUNS if not args.runs or run[0] in args.runs]
    for level, sparsity, structure in LEVELS:
        for name, fields in selected:
            if structure != "unstructured" and fields.get("group"):
                continue  # N:M fixes the group
            config = PruneConfig(sparsity=sparsity, structure=structure,
                                 batch_size=args.batch_size, store_masks=False, **fields)
            row = {"run": name, "level": level, "label": config.label(), "method": config.method,
                   "refine": config.refine, "structure": structure, "sparsity": sparsity,
                   "group": config.comparison_group,
                   **run_one(model, calib_ids, eval_ids, config, args)}
            backup.restore(model)
            rows.append(row)
            print(f"{level:4s} {name:18s} ppl {row['perplexity']:9.2f}  sparsity "
                  f"{row['achieved_sparsity']:.4f}  prune cpu {row['prune_cpu_s']:6.2f}s",
                  flush=True)
    return rows


def render_markdown(record: dict) -> str:
    """The docs tables from a record (no number typed by hand)."""
    runs = record["runs"]
    levels = list(dict.fromkeys(r["level"] for r in runs))
    names = list(dict.fromkeys(r["run"] for r in runs))
    cell = {(r["run"], r["level"]): r for r in runs}
    head = "| method | " + " | ".join(f"ppl {lv}" for lv in levels) + " | " + " | ".join(
        f"prune CPU s {lv}" for lv in levels) + " |"
    lines = [head, "|---" * (1 + 2 * len(levels)) + "|",
             f"| dense | {record['dense_perplexity']:.2f}" + " | -" * (2 * len(levels) - 1)
             + " |"]
    for name in names:
        ppl = [f"{cell[(name, lv)]['perplexity']:.2f}" if (name, lv) in cell else "-"
               for lv in levels]
        cpu = [f"{cell[(name, lv)]['prune_cpu_s']:.1f}" if (name, lv) in cell else "-"
               for lv in levels]
        lines.append(f"| {name} | " + " | ".join(ppl + cpu) + " |")
    calib = record["calibration"]
    lines += ["", f"{record['model']} (commit {record['git']['commit'][:7]}); calibration "
              f"{calib['source']}, {calib['n_samples']} x {calib['seq_len']} tokens, seed "
              f"{calib['seed']}; perplexity: {record['eval_protocol']}. {record['timing_protocol']}"
              f" {record['note']}"]
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=REAL_MODEL)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-samples", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-eval-windows", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calib-source", default=None, help="default: offline-aware default")
    parser.add_argument("--eval-source", default=None, help="default: offline-aware default")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--runs", nargs="*", default=None, help="subset of run names")
    parser.add_argument("--note", default="")
    parser.add_argument("--out-json", default="docs/successors/smollm2-135m.json")
    parser.add_argument("--render", default=None, metavar="JSON")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render:
        print(render_markdown(json.loads(Path(args.render).read_text(encoding="utf-8"))))
        return 0
    torch.set_num_threads(args.threads)
    record = {"model": args.model, "git": git_commit(), "note": args.note,
              "torch": torch.__version__, "threads": args.threads, "cpu_count": os.cpu_count(),
              "platform": platform.platform(), "load_average_start": os.getloadavg(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "settings": {"ria": asdict(RiaSettings()), "dsnot": asdict(DSnoTSettings()),
                           "batch_size": args.batch_size}}
    model, tokenizer = load_model(args.model)
    calib_ids, record["calibration"] = get_calibration_ids(
        tokenizer, source=args.calib_source or default_calibration_source(args.data_dir),
        n_samples=args.n_samples, seq_len=args.seq_len, seed=args.seed, data_dir=args.data_dir)
    eval_ids, label = get_eval_ids(tokenizer, source=args.eval_source
                                   or default_eval_source(args.data_dir), data_dir=args.data_dir)
    n_windows = count_eval_windows(eval_ids.numel(), args.seq_len, args.max_eval_windows)
    record["eval_protocol"] = perplexity_protocol(
        label, args.seq_len, n_windows, count_eval_windows(eval_ids.numel(), args.seq_len))
    record["dense_perplexity"] = perplexity(model, eval_ids, args.seq_len,
                                            max_windows=args.max_eval_windows, show_progress=False)
    print(f"dense ppl {record['dense_perplexity']:.2f}", flush=True)
    record["runs"] = run_all(model, calib_ids, eval_ids, args)
    record["timing_protocol"] = (
        f"torch threads {args.threads}; prune_cpu_s = process CPU seconds of scores, masks, "
        "refinement and weight updates (no calibration forward passes); wall seconds in "
        "prune_s / calibration_forward_s are upper bounds on a shared machine.")
    record["load_average_end"] = os.getloadavg()
    out = Path(args.out_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, default=float), encoding="utf-8")
    print(render_markdown(record))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
