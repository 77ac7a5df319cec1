"""Measure Wanda's successors on the real model and write one JSON record (issue 20, item 7).

Runs, at 50% and 60% unstructured and at 2:4, on the same calibration windows and evaluation text:
magnitude, "relative importance" alone (ri), Wanda, RIA (its default per-layer threshold; per row
too), SparseGPT, and DSnoT on top of Wanda and of SparseGPT. Every point is a ``Prune`` change on
the one point runner (``wanda_viz.points``; nothing cached: no fingerprint). Records perplexity,
achieved sparsity and pruning time: prune_cpu_s = CPU seconds of scores, masks, refinement and
weight updates only (the papers' "pruning time", without calibration forward passes), measured
around the pipeline's per-input-group prune call; the calibration forward passes are separate.

    OMP_NUM_THREADS=1 python scripts/measure_successors.py --threads 1 \\
        --out-json docs/successors/smollm2-135m.json
    python scripts/measure_successors.py --render docs/successors/smollm2-135m.json --write-docs

``--render`` prints the tables of a record; ``--write-docs`` also writes them between the
``<!-- successors:... -->`` markers of docs/methods.md (full table) and README.md (short table).
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from wanda_viz import get_calibration_ids, get_eval_ids, load_model  # noqa: E402
from wanda_viz.config import EvalConfig, PruneConfig  # noqa: E402
from wanda_viz.data import default_calibration_source, default_eval_source  # noqa: E402
from wanda_viz.gguf import REAL_MODEL  # noqa: E402
from wanda_viz.points import Dense, PointRunner, Prune, resolve_eval_setup  # noqa: E402
from wanda_viz.pruning import pipeline  # noqa: E402
from wanda_viz.pruning.registry import (get_method, get_refinement,  # noqa: E402
                                        settings_dict)

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
DOCS = {"docs/methods.md": "full", "README.md": "short"}  # file -> which table --write-docs puts


class PruneCpuClock:
    """CPU seconds spent inside the pipeline's prune calls (scores, masks, refinement, updates)."""

    def __init__(self):
        self.seconds = 0.0
        self._original = None

    def __enter__(self):
        self._original = original = pipeline.prune_shared_input_layers

        def timed(*args, **kwargs):
            start = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - start
        pipeline.prune_shared_input_layers = timed
        return self

    def __exit__(self, *exc):
        pipeline.prune_shared_input_layers = self._original


def git_commit() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout
    return {"commit": git("rev-parse", "HEAD").strip(),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no").strip())}


def run_one(runner: PointRunner, config: PruneConfig) -> dict:
    """One pruned point on the runner (the model is dense again afterwards)."""
    cpu = time.process_time()
    with PruneCpuClock() as clock:
        row = runner.run(Prune(config))
    return {"perplexity": row["perplexity"], "achieved_sparsity": row["achieved_sparsity"],
            "prune_cpu_s": clock.seconds, "prune_s": row["prune_s"],
            "calibration_forward_s": row["forward_s"], "total_s": row["total_s"],
            "eval_s": row["eval_s"], "point_cpu_s": time.process_time() - cpu}


def run_all(runner: PointRunner, args) -> list[dict]:
    rows = []
    selected = [run for run in RUNS if not args.runs or run[0] in args.runs]
    for level, sparsity, structure in LEVELS:
        for name, fields in selected:
            if structure != "unstructured" and fields.get("group"):
                continue  # N:M fixes the group
            config = PruneConfig(sparsity=sparsity, structure=structure,
                                 batch_size=args.batch_size, store_masks=False, **fields)
            row = {"run": name, "level": level, "label": config.label(), "method": config.method,
                   "refine": config.refine, "structure": structure, "sparsity": sparsity,
                   "group": config.comparison_group, **run_one(runner, config)}
            rows.append(row)
            print(f"{level:4s} {name:18s} ppl {row['perplexity']:9.2f}  sparsity "
                  f"{row['achieved_sparsity']:.4f}  prune cpu {row['prune_cpu_s']:6.2f}s",
                  flush=True)
    return rows


def _cells(record: dict):
    runs = record["runs"]
    levels = list(dict.fromkeys(r["level"] for r in runs))
    names = list(dict.fromkeys(r["run"] for r in runs))
    return levels, names, {(r["run"], r["level"]): r for r in runs}


def _row(name: str, cell: dict, levels, key: str, fmt: str) -> list[str]:
    return [format(cell[(name, lv)][key], fmt) if (name, lv) in cell else "-" for lv in levels]


def _source(record: dict) -> str:
    git, calib = record["git"], record["calibration"]
    dirty = " with uncommitted changes" if git.get("dirty") else ""
    return (f"{record['model']}, measured at commit {git['commit'][:7]}{dirty} by "
            f"`scripts/measure_successors.py` (`{record['json_path']}`); calibration "
            f"{calib['source']}, {calib['n_samples']} x {calib['seq_len']} tokens, seed "
            f"{calib['seed']}; perplexity: {record['eval_protocol']}.")


def _refine_deltas(record: dict) -> list[str]:
    """One line per refined run: its perplexity minus its base's, per level (negative = better)."""
    levels, names, cell = _cells(record)
    lines = []
    for name in names:
        base = name.split(" + ")[0]
        if base == name or base not in names:
            continue
        deltas = [f"{lv} {cell[(name, lv)]['perplexity'] - cell[(base, lv)]['perplexity']:+.2f}"
                  for lv in levels if (name, lv) in cell and (base, lv) in cell]
        lines.append(f"- {name} minus {base}: " + ", ".join(deltas))
    return lines


def render_markdown(record: dict) -> str:
    """The full docs table from a record (no number typed by hand)."""
    levels, names, cell = _cells(record)
    head = "| method | " + " | ".join(f"ppl {lv}" for lv in levels) + " | " + " | ".join(
        f"prune CPU s {lv}" for lv in levels) + " |"
    lines = [head, "|---" * (1 + 2 * len(levels)) + "|",
             f"| dense | {record['dense_perplexity']:.2f}" + " | -" * (2 * len(levels) - 1)
             + " |"]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(_row(name, cell, levels, "perplexity", ".2f")
                                                 + _row(name, cell, levels, "prune_cpu_s", ".1f"))
                     + " |")
    lines += ["", _source(record) + f" {record['timing_protocol']} {record['note']}".rstrip(),
              "", "Perplexity of each DSnoT run minus its base method's (negative = DSnoT "
              "helps):", "", *_refine_deltas(record)]
    return "\n".join(lines)


def render_short(record: dict) -> str:
    """The README's short table: perplexity per level."""
    levels, names, cell = _cells(record)
    lines = ["| method | " + " | ".join(levels) + " |", "|---" * (1 + len(levels)) + "|",
             f"| dense | {record['dense_perplexity']:.2f}" + " | -" * (len(levels) - 1) + " |"]
    lines += [f"| {name} | " + " | ".join(_row(name, cell, levels, "perplexity", ".2f")) + " |"
              for name in names]
    return "\n".join(lines + ["", _source(record)])


def write_docs(record: dict, root: Path = ROOT) -> None:
    """Put the tables between ``<!-- successors:begin -->`` and ``<!-- successors:end -->``."""
    begin, end = "<!-- successors:begin -->", "<!-- successors:end -->"
    for name, kind in DOCS.items():
        path = root / name
        text = path.read_text(encoding="utf-8")
        if begin not in text or end not in text:
            raise SystemExit(f"{name} has no {begin} ... {end} markers")
        table = render_markdown(record) if kind == "full" else render_short(record)
        head, rest = text.split(begin, 1)
        path.write_text(f"{head}{begin}\n{table}\n{end}{rest.split(end, 1)[1]}",
                        encoding="utf-8")
        print(f"wrote the {kind} table into {name}")


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
    parser.add_argument("--write-docs", action="store_true",
                        help="with --render: write the tables into docs/methods.md and README.md")
    return parser.parse_args(argv)


def _render(args) -> int:
    path = Path(args.render)
    record = json.loads(path.read_text(encoding="utf-8"))
    resolved = path.resolve()
    record["json_path"] = str(resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT)
                              else path)
    print(render_markdown(record))
    if args.write_docs:
        write_docs(record)
    return 0


def _setup(model, tokenizer, args, record: dict):
    calib_ids, record["calibration"] = get_calibration_ids(
        tokenizer, source=args.calib_source or default_calibration_source(args.data_dir),
        n_samples=args.n_samples, seq_len=args.seq_len, seed=args.seed, data_dir=args.data_dir)
    eval_ids, label = get_eval_ids(tokenizer, source=args.eval_source
                                   or default_eval_source(args.data_dir), data_dir=args.data_dir)
    evaluation = EvalConfig(source=None, max_windows=args.max_eval_windows, seq_len=args.seq_len)
    return resolve_eval_setup(model, evaluation, eval_ids=eval_ids, eval_label=label,
                              calib_ids=calib_ids, calibration=record["calibration"],
                              batch_size=args.batch_size)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render:
        return _render(args)
    torch.set_num_threads(args.threads)
    record = {"model": args.model, "git": git_commit(), "note": args.note,
              "torch": torch.__version__, "threads": args.threads, "cpu_count": os.cpu_count(),
              "platform": platform.platform(), "load_average_start": os.getloadavg(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "settings": {"ria": settings_dict(get_method("ria").settings()),
                           "dsnot": settings_dict(get_refinement("dsnot").settings()),
                           "batch_size": args.batch_size}}
    model, tokenizer = load_model(args.model)
    setup = _setup(model, tokenizer, args, record)
    runner = PointRunner(model, setup)  # no fingerprint: nothing is cached
    record["eval_protocol"] = setup.eval_protocol
    record["dense_perplexity"] = runner.run(Dense())["perplexity"]
    print(f"dense ppl {record['dense_perplexity']:.2f}", flush=True)
    record["runs"] = run_all(runner, args)
    record["timing_protocol"] = (
        f"torch threads {args.threads}; prune_cpu_s = process CPU seconds of scores, masks, "
        "refinement and weight updates (no calibration forward passes); wall seconds in "
        "prune_s / calibration_forward_s are upper bounds on a shared machine.")
    record["load_average_end"] = os.getloadavg()
    out = Path(args.out_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, default=float), encoding="utf-8")
    print(f"wrote {out}; render it with --render {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
