"""Time estimates shown before a long job starts (sweep, ablation, why it works).

A job is a list of points; a point costs calibration forward passes (Wanda, SparseGPT), the mask
(and SparseGPT's weight update) and one perplexity evaluation. Each part is measured once on the
real SmolLM2-135M (134.5M parameters, hidden 576) on one idle CPU core, and scaled linearly by
parameters x tokens (the mask: by parameters; SparseGPT's update: by parameters x hidden size).
The constants come from committed benchmark records (``tests/test_estimates.py`` checks them
against the JSON files):

* calibration forward and mask, 16 x 256 calibration tokens, one thread, CPU clock:
  ``benchmarks/results/bench_real_pass_end_1t.json`` (Wanda, SparseGPT) and
  ``benchmarks/results/bench_real_final_mw.json`` (magnitude);
* perplexity (8 x 128 tokens) and the activation report (16 x 128 tokens), CPU seconds:
  ``benchmarks/results/real_model_defaults_issue13.json`` (``first_prune``; the issue-13 record of
  ``docs/real_model_defaults.json``, made at load 4-8, before records named their commit; the
  current record was made at load 15-22, which inflates CPU seconds too).

Two idle vCPUs (torch's two threads) take about 0.6x the one-core time (BENCHMARKS.md 8b: Wanda
9.4 s against 16.9 s, SparseGPT 20 s against 32 s); a busy host takes longer, cached points none.
No GPU record is committed: on CUDA the estimate says so instead of guessing.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["Workload", "REFERENCE", "point_seconds", "sweep_estimate", "ablation_estimate",
           "why_estimate", "session_workload", "BASIS"]

# The measured model: SmolLM2-135M-Instruct (GGUF Q4_1 dequantized to fp32).
REFERENCE_PARAMS, REFERENCE_HIDDEN = 134_515_008, 576
# CPU seconds on one idle core for the reference model.
CALIB_TOKENS_MEASURED = 16 * 256
CALIB_FORWARD_S = {"magnitude": 0.0, "wanda": 14.49, "sparsegpt": 20.18}   # per 4,096 tokens
MASK_S = {"magnitude": 2.23, "wanda": 2.26, "sparsegpt": 11.98}            # per point
EVAL_S, EVAL_TOKENS_MEASURED = 3.28, 8 * 128                               # dense perplexity
REPORT_S, REPORT_TOKENS_MEASURED = 5.67, 16 * 128                          # activation report
TWO_CORES = 0.6   # wall / one-core CPU time with torch's two threads on two idle vCPUs
BASIS = ("basis: SmolLM2-135M measured on one CPU core (benchmarks/results/"
         "bench_real_pass_end_1t.json, real_model_defaults_issue13.json), scaled by parameters x "
         "tokens")


@dataclass(frozen=True)
class Workload:
    """What a point's cost scales with: the model and the session's windows."""

    n_params: int
    hidden_size: int
    calib_tokens: int         # n_samples x seq_len
    eval_tokens: int          # evaluation windows x seq_len

    @property
    def scale(self) -> float:
        return self.n_params / REFERENCE_PARAMS


def _eval_s(work: Workload) -> float:
    return EVAL_S * work.scale * work.eval_tokens / EVAL_TOKENS_MEASURED


def point_seconds(method: str, work: Workload) -> float:
    """One-core CPU seconds of one pruned point (calibration, mask, perplexity)."""
    forward = CALIB_FORWARD_S.get(method, CALIB_FORWARD_S["wanda"])
    mask = MASK_S.get(method, MASK_S["wanda"]) * work.scale
    if method == "sparsegpt":  # the OBS update grows with the width of each layer too
        mask *= max(work.hidden_size, 1) / REFERENCE_HIDDEN
    return forward * work.scale * work.calib_tokens / CALIB_TOKENS_MEASURED + mask + _eval_s(work)


def _say(cpu_seconds: float, what: str) -> str:
    if torch.cuda.is_available():
        return (f"Estimate: {what}. On this host's GPU it should take far less than the "
                f"{_duration(cpu_seconds)} one CPU core would need (no GPU timing is recorded).")
    threads = torch.get_num_threads()
    wall = cpu_seconds * (TWO_CORES if threads >= 2 else 1.0)
    return (f"Estimate: about **{_duration(wall)}** for {what} on {threads} idle CPU "
            f"thread{'s' if threads > 1 else ''} (points already cached: instant; a busy host: "
            f"longer). *{BASIS}.*")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(5, round(seconds / 5) * 5):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def sweep_estimate(work: Workload, configs: Sequence[str]) -> str:
    """``configs``: the method of each pruned point of the request (dense adds one evaluation)."""
    seconds = _eval_s(work) + sum(point_seconds(m, work) for m in configs)
    return _say(seconds, f"{len(configs)} pruned point{'s' if len(configs) != 1 else ''}")


def ablation_estimate(work: Workload) -> str:
    """Wanda and magnitude under the row, layer and input groups, plus dense."""
    seconds = _eval_s(work) + 3 * (point_seconds("wanda", work)
                                   + point_seconds("magnitude", work))
    return _say(seconds, "6 pruned points (Wanda and magnitude x 3 comparison groups)")


def why_estimate(work: Workload, n_ks: int, n_seeds: int) -> str:
    """One dense pass, one dense point, k x (outlier + seeds) cuts, two activation points and
    one pass for the activation means."""
    report = REPORT_S * work.scale * work.calib_tokens / REPORT_TOKENS_MEASURED
    points = 1 + n_ks * (1 + n_seeds) + 2
    seconds = 2 * report + points * _eval_s(work)
    return _say(seconds, f"one dense pass and {points} perplexity points")


def session_workload(session) -> Workload | None:
    """The workload of a ``Session``'s setup (None before its first prune)."""
    if session.model_size is None or session.calib_ids is None:
        return None
    n_samples, seq_len = session.calib_ids.shape
    windows = (session.eval_spec.max_windows if session.eval_spec is not None else None) or 8
    params, hidden = session.model_size
    return Workload(params, hidden, n_samples * seq_len, windows * seq_len)
