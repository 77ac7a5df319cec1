"""Short explanations shown at the top of each tab, written for a teacher preparing a lesson.

``method_notes()`` lists every registered method and refinement with its score and paper, from the
registry, so a new method is explained (and cited) in the dashboard without editing this file.
"""
from __future__ import annotations

from ..pruning.registry import METHODS, REFINEMENTS

__all__ = ["INTRO", "MODEL_TAB", "OUTLIERS_TAB", "SCORES_TAB", "MASKS_TAB", "SWEEP_TAB",
           "GENERATE_TAB", "WHY_TAB", "method_notes"]


def method_notes() -> str:
    """One line per method (label, score formula, default comparison group, paper) and per
    refinement, as Markdown."""
    lines = [f"- **{spec.label}** (`{name}`): score `{spec.formula}`, compared per "
             f"{_group(spec)} by default; {spec.citation}" for name, spec in METHODS.items()]
    lines += [f"- refinement **{spec.label}** (`--refine {name}`, on top of any method): "
              f"{spec.citation}" for name, spec in REFINEMENTS.items()]
    return "**Methods.**\n" + "\n".join(lines)


def _group(spec) -> str:
    """"row", or "128-column block" where the width is one of the method's settings."""
    width = getattr(spec.settings(), "block_size", None)
    return f"{width}-column block" if spec.default_group == "block" and width else \
        spec.default_group

INTRO = """# wanda-viz: why can half of an LLM's weights be removed?
Prune a causal language model with **magnitude**, **Wanda** (|W| x input-activation norm, compared
per output row; [arXiv 2306.11695](https://arxiv.org/abs/2306.11695)) or **SparseGPT**
([arXiv 2301.00774](https://arxiv.org/abs/2301.00774)), then look at the evidence: a few hidden
channels carry huge activations, and Wanda protects the weights that read them.
Start in tab 1 with the defaults (the real SmolLM2-135M when installed, else the embedded demo
model; offline, the bundled WikiText-2 slices): one click fills every tab."""

MODEL_TAB = """**What it does.** Loads the model (hub models only on request; the host may refuse
large ones or ones that ship their own code), draws calibration windows with the reference sampler
(random windows of `seq_len` tokens, Python `random` seeded), prunes block by block (each block's
statistics see the already pruned blocks before it) and measures perplexity by the reference
protocol (non-overlapping windows of the same `seq_len`). The dense model in memory is never
changed: each run is kept as your own small result (masks, statistics, timings).
**Why it matters.** Magnitude, Wanda and SparseGPT differ only in *which* weights they remove; a
preset runs them on exactly the same windows so the perplexities are comparable."""

OUTLIERS_TAB = """**What it shows.** The residual stream (decoder block outputs) of the *dense*
model on the calibration windows: per layer the three largest |h| against the median, a layers x
channels map and massive activations (|h| over 100 and over 1000 x the median,
[arXiv 2402.17762](https://arxiv.org/abs/2402.17762)) with the tokens that carry them (often the
first token or a delimiter); and LLM.int8 outlier features, counted on the inputs of the linear
layers (attention and FFN inputs after normalisation: |x| >= 6 at >= 25% of them and on >= 6% of
positions, [arXiv 2208.07339](https://arxiv.org/abs/2208.07339)). **Why it matters for Wanda.** Its score
multiplies |W| by the input-channel norm ||X_j||: a small weight reading a huge channel is kept,
which magnitude pruning would delete. A tiny demo model shows weaker outliers than a 7B model."""

SCORES_TAB = """**What it shows.** For one layer of the dense model, the distribution of the three
scores: magnitude |W|, Wanda |W| x ||X_j||, SparseGPT W^2 / [H^-1]_jj^2 (first 128-column block's
view), each with the threshold its comparison group implies at the chosen sparsity (one per layer
for magnitude, one per output row for Wanda, one per 128-column block for SparseGPT), and how much
the methods agree (Spearman rank correlation, overlap of the pruned sets).
**Why it matters.** The scores rank weights differently; where they disagree is where the input
statistics change the decision."""

MASKS_TAB = """**What it shows.** The same Wanda scores turned into a mask two ways: per output row
(each row loses exactly the target share, Wanda's choice) or with one threshold per layer. The
histogram shows how unequal rows become under one threshold; the map shows a 64 x 64 corner of
the layer. The ablation button prunes the whole model with each comparison group (row, layer,
input) for Wanda and magnitude and reports perplexity (the paper's comparison-group ablation).
**Why it matters.** The comparison group is half of Wanda's recipe: per-row comparison keeps every
output neuron alive."""

SWEEP_TAB = """**What it shows.** Perplexity against sparsity for each method (lines) and N:M
structures (markers), with the dense model as a reference line. Points already computed for the
same model, calibration windows and protocol are read from the on-disk cache, so a sweep can be
extended cheaply. Downloads: CSV, JSON and a standalone HTML report with the protocol.
**Why it matters.** The gap between methods opens at high sparsity; one point never tells the
story."""

GENERATE_TAB = """**What it shows.** The same prompt continued by the dense model and by one pruned
run with identical decoding settings (greedy by default, or seeded sampling). Tokens that differ
from the dense continuation are highlighted; the plot gives the probability of each chosen token.
Tokens/s compares dense and pruned models on the same dense kernels: unstructured zeros give no
speedup. **Why it matters.** Perplexity is an average; text shows where a pruned model first goes
its own way."""

WHY_TAB = """**Why does Wanda work?** Its paper argues: a few input channels carry huge activations;
magnitude pruning deletes the small weights that read them; Wanda (|W| x ||X_j||, compared per
output row) keeps them. This tab tests the argument on the model of your last prune (tab 1), with
its calibration windows and perplexity protocol, in three steps:

1. **Where do the two masks disagree?** Per input channel j, the weights Wanda keeps and magnitude
   prunes (blue) and the reverse (red), against the channel's norm ||X_j||. If the argument holds,
   the blue points pile up at the right and the top 1% of channels carry far more than 1% of the
   disagreements.
2. **Do those weights matter?** Remove every weight that reads the k largest-norm input channels
   of each layer, and the same number of weights reading k random channels, and compare perplexity.
3. **What do the big activations do?** Massive activations (Sun et al., arXiv 2402.17762) set to
   zero break the model; set to their average they change almost nothing: they act as fixed
   biases, which is why the weights that read them must survive pruning.

The dense model is never changed (weights restored, hooks removed); perplexity points are cached
per model and calibration like the sweep. A tiny demo model shows weaker effects than a real LLM."""
