"""Short explanations shown at the top of each tab, written for a teacher preparing a lesson.

``method_notes()`` lists every registered method and refinement with its score and paper, from the
registry, so a new method is explained (and cited) in the dashboard without editing this file.
"""
from __future__ import annotations

from ..pruning.registry import METHODS, REFINEMENTS

__all__ = ["INTRO", "MODEL_TAB", "FIRST_CLICK", "OUTLIERS_TAB", "OUTLIERS_PROTOCOL", "SCORES_TAB",
           "SCORES_PROTOCOL", "MASKS_TAB", "SWEEP_TAB", "GENERATE_TAB", "WHY_TAB", "WHY_PROTOCOL",
           "SINKS_TAB", "SINKS_PROTOCOL",
           "method_notes"]


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
Press **Prune: magnitude vs Wanda** in tab 1: the real SmolLM2-135M (when available) loses half of
every layer's weights twice, once by weight size (**magnitude**) and once by weight size x
input-activation size (**Wanda**, [arXiv 2306.11695](https://arxiv.org/abs/2306.11695)), and you
see what each costs. That click also fills tabs 2, 3, 4 and 6 (outlier channels, scores, masks,
generation); the ablation (tab 4), the sweep (tab 5) and the causal test (tab 7) run on their own
button, each with its time estimate, as do zero-shot accuracy (tab 8) and the attention sinks
(tab 9). Every long job has a Cancel button."""

MODEL_TAB = """Both methods remove the same share of weights in every layer, chosen on the same
calibration windows; perplexity (lower is better) is measured on the same text. The protocol is
in the accordion below the results."""

FIRST_CLICK = ("*The first click loads the model and measures the dense model too: on the real "
               "model 68 s on 2 idle CPU cores from an empty cache (36 s of it a one-time float "
               "copy of the model), later clicks 16 s (measured: BENCHMARKS.md, \"The first "
               "result\").*")

OUTLIERS_TAB = """A few hidden channels of an LLM carry activations thousands of times larger than the
rest. Wanda's score multiplies |W| by the input-channel norm ||X_j||, so the small weights that
read those channels survive; magnitude pruning deletes them. Measured on the *dense* model, on the
calibration windows of your last prune."""

OUTLIERS_PROTOCOL = """**Massive activation** ([Sun et al., arXiv 2402.17762](https://arxiv.org/abs/2402.17762)):
one entry of the residual stream (a decoder block's output) with |h| > 100 and > 1000 x the median
|h| of that block. **LLM.int8 outlier feature** ([Dettmers et al., arXiv 2208.07339](https://arxiv.org/abs/2208.07339)):
a channel with |x| >= 6 on at least 6% of the positions of a linear layer's input (attention and
FFN inputs after normalisation) in at least 25% of the decoder blocks. **Input-channel norm**
||X_j|| = sqrt(mean over windows of sum_t x_tj^2), Wanda's statistic. A tiny demo model shows
weaker outliers than a real LLM."""

SCORES_TAB = """Three ways to rank the same weights of one layer of the dense model: magnitude |W|,
Wanda |W| x ||X_j||, SparseGPT W^2 / [H^-1]_jj^2. Where they disagree is where the input
statistics change the decision. The layer picker opens on the layer whose input-channel norms are
most uneven."""

SCORES_PROTOCOL = """Each method's threshold at the chosen sparsity follows its reference
comparison group: one per layer for magnitude, one per output row for Wanda, one per 128-column
block for SparseGPT (its saliency on the dense weight with 1% damping: the first block's view).
Spearman: rank correlation of the scores (1 = same order). Jaccard: |A and B| / |A or B| of the
pruned sets."""

MASKS_TAB = """The same Wanda scores turned into a mask two ways: per output row (every row loses
exactly the target share: Wanda's choice) or with one threshold for the whole layer. One threshold
leaves some rows almost empty; per-row comparison keeps every output neuron alive. The ablation
button prunes the whole model with each comparison group (the Wanda paper's Table 8)."""

SWEEP_TAB = """Perplexity against sparsity for each method: the gap between methods opens at high
sparsity, so one point never tells the story. The default draws magnitude and Wanda at five
sparsities; points already computed for this model, windows and protocol come from the on-disk
cache, so a sweep can be extended cheaply."""

GENERATE_TAB = """The same prompt continued by the dense model and by one pruned run with identical
decoding settings (greedy by default). Tokens that differ from the dense continuation are
highlighted. Perplexity is an average; text shows where a pruned model first goes its own way."""

WHY_TAB = """**Why does Wanda work?** Its paper argues: a few input channels carry huge
activations; magnitude pruning deletes the small weights that read them; Wanda (|W| x ||X_j||,
compared per output row) keeps them. Three steps test the argument on the model of your last
prune, with its windows and perplexity protocol: (1) where the two masks disagree, (2) what
cutting the weights that read the largest channels costs against random ones, (3) what the
massive activations do when set to zero or to their mean."""

WHY_PROTOCOL = """1. Per input channel j, the weights Wanda keeps and magnitude prunes (blue) and
the reverse (red), against the channel's norm ||X_j||; the top 1% of channels by norm should
carry far more than 1% of the disagreements. 2. In every prunable layer, zero every weight that
reads its k largest-norm input channels, or k random channels (several seeds); perplexity each
time. 3. Massive activations ([Sun et al., arXiv 2402.17762](https://arxiv.org/abs/2402.17762))
at the block where they first appear set to zero or to their mean over the calibration windows.
The dense model is never changed (weights restored, hooks removed); perplexity points are cached
per model and calibration like the sweep. A tiny demo model shows weaker effects than a real LLM."""

SINKS_TAB = """**Where do the huge activations go?** Tokens that carry massive activations (in LLaMA-style
models, the first token) attract most of the attention of most heads: *attention sinks* (Sun et
al., arXiv 2402.17762; Xiao et al., StreamingLLM, arXiv 2309.17453). On the model and windows of
your last prune (tab 1), this tab measures, per block and head, how much attention goes to the
first token; whether what it returns is a constant, input-independent *bias*; what happens when
the massive activations are replaced in **every** block where they appear; whether a sliding
attention window survives without the first tokens; and how much of the weights reading the
massive channels magnitude and Wanda keep. Each effect is measured, not assumed: some models
do not show it (arXiv 2503.22329)."""

SINKS_PROTOCOL = """- **First-token attention**: eager attention probabilities (after softmax) on position 0, mean
  over the calibration windows and query positions 1..T-1 (= `output_attentions=True`); the model
  returns to its own attention implementation afterwards. Blocks marked * get massive activations
  in their input.
- **Implicit bias**: the attention output split into the first token's term `W_o [p_q0 v_0]` and
  the rest; constancy = mean cosine similarity between query positions (pooled over windows).
- **Interventions**: massive entries (`|h| > 100` and `> 1000 x` the window's median) of every
  block's output set to 0 or to their mean over the calibration windows; control: as many random
  entries, set to 0 or to their channel's mean; perplexity on the evaluation text of tab 1.
- **Sliding window**: each token sees its last W tokens, with or without the first tokens, through
  an attention mask with the original positions (StreamingLLM re-assigns positions inside its
  cache; within the trained context both see the same distances); perplexity on the predictions
  after the largest W in chunks of the evaluation text.
- **Pruning meets sinks**: magnitude (per layer) and Wanda (per row) at the chosen sparsity on the
  dense weights: share kept of the weights reading the massive channels (residual channels for
  q/k/v and gate/up; the layer input's own massive channels for o and down).

Full protocol: docs/sinks.md and docs/PROTOCOLS.md."""

