"""Perplexity throughput (tokens/s) of ``wanda_viz.perplexity`` against a plain Hugging Face loop.

Both evaluate the same non-overlapping windows: ours is ``perplexity(model, ids, seq_len,
max_windows=...)``; the baseline is ``model(window, labels=window).loss`` per window, perplexity
``exp(mean loss)`` (identical by the reference protocol since every window has seq_len tokens).
Goal: ours >= 0.95 x the baseline's tokens/s; the two perplexities must agree. On a shared machine
the robust figure is the paired one: every window timed with ours and HF back to back, median of
the per-window time ratios; the end-to-end ratio (interleaved whole runs) is reported too.

    python benchmarks/bench_eval.py --sizes demo tiny --seq-len 128 --max-windows 16
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import torch  # noqa: E402

from wanda_viz import perplexity  # noqa: E402
from wanda_viz.loading import DEMO_MODEL_DIR  # noqa: E402

GOAL_RATIO = 0.95


@torch.no_grad()
def hf_perplexity(model, ids: torch.Tensor, seq_len: int, n_windows: int) -> float:
    """The plain loop: one ``model(window, labels=window).loss`` per window."""
    windows = ids.reshape(-1)[: n_windows * seq_len].reshape(n_windows, seq_len)
    losses = [model(w.unsqueeze(0), labels=w.unsqueeze(0), use_cache=False).loss.item()
              for w in windows]
    return math.exp(sum(losses) / len(losses))


def _paired_windows(model, ids, seq_len: int, n_windows: int, repeats: int) -> dict:
    """Per window, ours then HF back to back; the median of hf_time / ours_time over all pairs.

    Robust to load drift on a shared machine: both halves of a pair see the same load.
    """
    windows = ids.reshape(-1)[: n_windows * seq_len].reshape(n_windows, seq_len)
    ratios = []
    for _ in range(repeats):
        for window in windows:
            one = window.unsqueeze(0)
            ours = common.median_time(lambda: perplexity(model, one, seq_len, show_progress=False),
                                      repeats=1, warmup=0)["median"]
            hf = common.median_time(lambda: hf_perplexity(model, one, seq_len, 1),
                                    repeats=1, warmup=0)["median"]
            ratios.append(hf / ours)
    return common.summarize(ratios)


def load_subject(name: str, args):
    """(model, eval ids (1, n), description) for a size or "demo"; None when unavailable."""
    if name == "demo":
        if not (DEMO_MODEL_DIR / "config.json").is_file():
            return None
        from wanda_viz import get_eval_ids, load_model
        model, tokenizer = load_model(DEMO_MODEL_DIR, device="cpu", dtype="float32")
        try:
            ids, label = get_eval_ids(tokenizer, source="wikitext2")
        except (OSError, ValueError):
            ids, label = common.random_ids(1, 200_000, model.config.vocab_size), "random ids"
        return model, ids, {"model": DEMO_MODEL_DIR.name, "eval": label}
    model = common.make_llama(name)
    n_tokens = args.seq_len * args.max_windows
    ids = common.random_ids(1, n_tokens, model.config.vocab_size)
    return model, ids, {"model": f"random LLaMA {name}", **common.LLAMA_SIZES[name],
                        "eval": "random ids"}


def bench_subject(model, ids, args) -> dict:
    from wanda_viz.layers import model_context_length
    seq_len = min(args.seq_len, model_context_length(model) or args.seq_len)
    n_windows = min(args.max_windows, ids.numel() // seq_len)
    tokens = n_windows * seq_len
    ppl = {}

    def ours():
        ppl["ours"] = perplexity(model, ids, seq_len, max_windows=n_windows,
                                 batch_size=args.batch_size, show_progress=False)

    def hf():
        ppl["hf"] = hf_perplexity(model, ids, seq_len, n_windows)

    # Interleave the two so that load drifts hit both alike.
    ours_t, hf_t = [], []
    for i in range(args.repeats + 1):
        a = common.median_time(ours, repeats=1, warmup=0)["median"]
        b = common.median_time(hf, repeats=1, warmup=0)["median"]
        if i:  # first round is a warm-up
            ours_t.append(a)
            hf_t.append(b)
    ours_s, hf_s = common.summarize(ours_t), common.summarize(hf_t)
    ratio = hf_s["median"] / ours_s["median"]
    paired = _paired_windows(model, ids, seq_len, n_windows, args.repeats)
    print(f"  ours {tokens / ours_s['median']:9.0f} tok/s  hf {tokens / hf_s['median']:9.0f} tok/s"
          f"  ratio {ratio:.3f} (paired per window {paired['median']:.3f})"
          f"  ppl {ppl['ours']:.4f} vs {ppl['hf']:.4f}", flush=True)
    return {"seq_len": seq_len, "n_windows": n_windows, "tokens": tokens,
            "batch_size_ours": args.batch_size, "ours_s": ours_s, "hf_s": hf_s,
            "ours_tokens_per_s": tokens / ours_s["median"],
            "hf_tokens_per_s": tokens / hf_s["median"], "ours_over_hf": ratio,
            "paired_window_ratio": paired,
            "ppl_ours": ppl["ours"], "ppl_hf": ppl["hf"],
            "ppl_rel_diff": abs(ppl["ours"] - ppl["hf"]) / ppl["hf"]}


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n")[0], "bench_eval")
    parser.add_argument("--sizes", nargs="+", default=["demo", "tiny", "medium"],
                        choices=["demo", *common.LLAMA_SIZES])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--max-windows", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=1,
                        help="windows per forward in ours (the baseline always uses 1)")
    args = parser.parse_args(argv)
    common.apply_common_args(args)
    os.environ.setdefault("WANDA_VIZ_DATA", str(common.REPO_ROOT.parent / "shared" / "data"))
    machine = common.machine_info()
    subjects, goals = {}, {}
    for name in args.sizes:
        loaded = load_subject(name, args)
        if loaded is None:
            subjects[name] = {"skipped": f"{DEMO_MODEL_DIR} does not exist yet"}
            print(f"{name}: skipped")
            continue
        model, ids, desc = loaded
        print(f"{name}: {desc['model']}", flush=True)
        load_start = common.load_average()
        res = bench_subject(model, ids, args)
        subjects[name] = {"subject": desc, "load_average_start": load_start,
                          "load_average_end": common.load_average(), **res}
        paired = res["paired_window_ratio"]["median"]
        goals[f"{name}: ours >= {GOAL_RATIO} x HF tokens/s (paired per window)"] = {
            "value": round(paired, 3), "met": paired >= GOAL_RATIO,
            "end_to_end_ratio": round(res["ours_over_hf"], 3)}
        goals[f"{name}: same perplexity (rel diff < 1e-4)"] = {
            "value": res["ppl_rel_diff"], "met": res["ppl_rel_diff"] < 1e-4}
    payload = {"protocol": {"repeats": args.repeats, "warmup": 1, "interleaved": True,
                            "baseline": "model(window, labels=window).loss, one window at a time"},
               "subjects": subjects, "goals": goals}
    common.write_result(args.out, "bench_eval", payload, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
