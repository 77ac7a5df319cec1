"""Evaluation: perplexity by the reference protocol, and text generation for the comparison view.

Perplexity (locuslab/wanda lib/eval.py ``eval_ppl_wikitext``): the evaluation text tokenized once,
cut into ``n = numel // seq_len`` non-overlapping windows; loss is the mean next-token cross
entropy inside each window; ``ppl = exp(sum(loss_w * seq_len) / (n * seq_len))``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .cancel import CancelToken, check_cancelled
from .layers import model_context_length, model_device, resolve_seq_len

__all__ = ["evaluate", "perplexity", "perplexity_protocol", "eval_protocol", "count_eval_windows",
           "GenerationResult", "generate_text"]


def count_eval_windows(n_tokens: int, seq_len: int, max_windows: int | None = None) -> int:
    """Number of non-overlapping windows the protocol evaluates."""
    n_windows = n_tokens // seq_len
    return min(n_windows, max_windows) if max_windows else n_windows


def perplexity_protocol(label: str, seq_len: int, n_windows: int, total_windows: int) -> str:
    """Caption for a perplexity number, e.g. 'WikiText-2 raw test, seq_len 256, 10/1120 windows'."""
    scope = "all" if n_windows == total_windows else f"first {n_windows} of"
    return (f"{label}, non-overlapping seq_len {seq_len} windows ({scope} {total_windows}), "
            "exp(mean next-token NLL)")


def eval_protocol(eval_ids: torch.Tensor, label: str, seq_len: int,
                  max_windows: int | None = None) -> str:
    """The perplexity caption for ``eval_ids`` (1, n_tokens) cut into ``seq_len`` windows."""
    total = count_eval_windows(eval_ids.numel(), seq_len)
    used = count_eval_windows(eval_ids.numel(), seq_len, max_windows)
    return perplexity_protocol(label, seq_len, used, total)


def evaluate(model: nn.Module, eval_ids: torch.Tensor, label: str, seq_len: int | None = None, *,
             max_windows: int | None = None, batch_size: int = 1,
             show_progress: bool = True) -> tuple[float, str]:
    """(perplexity, protocol caption) of ``model`` on ``eval_ids`` by the reference protocol.

    The one evaluation step of the command line, the dashboard and the sweep.
    Args:
        label: what the text is, e.g. "WikiText-2 raw test" (``get_eval_ids``'s label).
        seq_len: window length (default: the model's context, capped at 2048).
    """
    seq_len = resolve_seq_len(model, seq_len)
    ppl = perplexity(model, eval_ids, seq_len, max_windows=max_windows, batch_size=batch_size,
                     show_progress=show_progress)
    return ppl, eval_protocol(eval_ids, label, seq_len, max_windows)


@torch.no_grad()
def perplexity(model: nn.Module, eval_ids: torch.Tensor, seq_len: int | None = None, *,
               max_windows: int | None = None, batch_size: int = 1,
               show_progress: bool = True, cancel: CancelToken | None = None) -> float:
    """Perplexity of ``model`` on ``eval_ids`` (1, n_tokens) by the reference protocol.

    Args:
        seq_len: window length (default: the model's context, capped at 2048).
        max_windows: evaluate only the first windows (quick looks); None = all.
        batch_size: windows per forward pass.
        cancel: checked before every batch of windows.
    """
    if max_windows is not None and max_windows < 1:
        raise ValueError(f"max_windows must be at least 1 (or None for all), got {max_windows}")
    seq_len = resolve_seq_len(model, seq_len)
    ids = eval_ids.reshape(-1)
    n_windows = count_eval_windows(ids.numel(), seq_len, max_windows)
    if n_windows == 0:
        raise ValueError(f"the evaluation text has {ids.numel()} tokens, fewer than one window "
                         f"of seq_len = {seq_len}")
    windows = ids[: n_windows * seq_len].reshape(n_windows, seq_len)
    device = model_device(model)
    nll_sum = torch.zeros((), dtype=torch.float64)
    for start in tqdm(range(0, n_windows, batch_size), desc="perplexity", leave=False,
                      disable=not show_progress):
        check_cancelled(cancel)
        batch = windows[start:start + batch_size].to(device)
        logits = model(batch, use_cache=False).logits  # (b, seq_len, vocab)
        # Mean CE over the window's seq_len - 1 predictions, times seq_len (reference weighting).
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), batch[:, 1:].flatten(),
                               reduction="none").view(batch.shape[0], -1).mean(dim=1)
        nll_sum += (loss.double() * seq_len).sum().cpu()
    return math.exp(nll_sum.item() / (n_windows * seq_len))


@dataclass
class GenerationResult:
    """One generation: the text, its tokens, each token's probability and the speed."""

    prompt: str
    text: str                                   # the generated continuation only
    token_ids: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    token_probs: list[float] = field(default_factory=list)  # prob of each chosen token
    seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return len(self.token_ids) / self.seconds if self.seconds > 0 else 0.0


@torch.no_grad()
def generate_text(model: nn.Module, tokenizer, prompt: str, *, max_new_tokens: int = 40,
                  do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                  seed: int = 0) -> GenerationResult:
    """Greedy (default) or seeded sampling continuation of ``prompt``.

    Sampling is reproducible: the RNG is forked and seeded, so global state is left untouched.
    """
    if not prompt or not prompt.strip():
        raise ValueError("the prompt is empty")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    device = model_device(model)
    inputs = tokenizer(prompt, return_tensors="pt").to(device)
    context = model_context_length(model)
    if context is not None and inputs.input_ids.shape[1] + max_new_tokens > context:
        raise ValueError(f"prompt ({inputs.input_ids.shape[1]} tokens) + {max_new_tokens} new "
                         f"tokens exceeds the model's context of {context}")
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if do_sample \
        else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        start = time.perf_counter()
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, use_cache=True,
                             output_scores=True, return_dict_in_generate=True,
                             pad_token_id=tokenizer.pad_token_id, **sampling)
        seconds = time.perf_counter() - start
    new_ids = out.sequences[0, inputs.input_ids.shape[1]:].tolist()
    probs = [torch.softmax(score[0].float(), dim=-1)[tok].item()
             for score, tok in zip(out.scores, new_ids)]
    return GenerationResult(prompt=prompt, text=tokenizer.decode(new_ids, skip_special_tokens=True),
                            token_ids=new_ids,
                            tokens=[tokenizer.decode([t]) for t in new_ids],
                            token_probs=probs, seconds=seconds)
