"""Massive activations set to zero or to their mean in EVERY block where they appear.

Sun et al. (arXiv 2402.17762, section 3; locuslab/massive-activations ``lib/hook.py``) intervene
at one block's output; the question left open there (massive-activations#4) is what happens when
every block's massive activations are replaced. Here every block of the activation report with
massive activations gets the existing one-block hook
(``why_activations.replace_massive_activations``:
entries of its massive channels that pass the rule in the window are overwritten), all at once.
The mean of each (block, channel) is taken over the dense model's massive entries in the
calibration windows, as the reference does over many inputs.

Control: in every such block, as many random (position, channel) entries per window as the rule
flags there, drawn among the non-massive entries with a seeded generator, set to zero or to the
channel's mean over every calibration position of that block. Newer work (arXiv 2503.22329)
finds that suppressing massive activations does not break every model: the result is measured.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..cancel import CancelToken, check_cancelled
from ..layers import model_device
from .outliers import ActivationReport, find_massive_activations
from .why_activations import INTERVENTIONS, MassiveSites, flag_massive, replace_massive_activations

__all__ = ["BlockMeans", "all_block_sites", "measure_block_means", "replace_in_all_blocks",
           "replace_random_activations"]

ACCUMULATE = torch.float64


def all_block_sites(report: ActivationReport, *, min_abs: float = 100.0,
                    min_ratio: float = 1000.0) -> list[MassiveSites]:
    """One ``MassiveSites`` per block with massive activations (its channels, largest first)."""
    massive = find_massive_activations(report, min_abs=min_abs, min_ratio=min_ratio)
    if massive.empty:
        raise ValueError(f"no massive activations (|h| > {min_abs:g} and > {min_ratio:g} x the "
                         "layer median) in this model on these calibration windows")
    sites = []
    for index, rows in massive.sort_values("abs", ascending=False).groupby("block_index"):
        sites.append(MassiveSites(block=str(rows["layer"].iloc[0]), block_index=int(index),
                                  channels=list(dict.fromkeys(int(c) for c in rows["channel"])),
                                  min_abs=min_abs, min_ratio=min_ratio))
    return sites


@dataclass
class BlockMeans:
    """The sites with their massive means, and every channel's mean per site block."""

    sites: list[MassiveSites]
    channel_means: dict[str, torch.Tensor]   # block -> (hidden,) mean over all positions


def _hidden_of(output) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


@torch.no_grad()
def measure_block_means(model: nn.Module, calib_ids: torch.Tensor, sites: list[MassiveSites], *,
                        batch_size: int = 8, cancel: CancelToken | None = None) -> BlockMeans:
    """One dense pass: mean of each site's massive entries, and of every channel, per block.

    Channels that never pass the rule per window at a block are dropped from that block's site;
    a block left without channels is dropped.
    """
    modules = dict(model.named_modules())
    sums = {s.block: torch.zeros(len(s.channels), dtype=ACCUMULATE) for s in sites}
    counts = {s.block: torch.zeros(len(s.channels), dtype=ACCUMULATE) for s in sites}
    channel_sums: dict[str, torch.Tensor] = {}
    positions = [0]

    def hook_for(site: MassiveSites):
        def hook(module, args, output):
            check_cancelled(cancel)
            hidden = _hidden_of(output)
            index = torch.tensor(site.channels, device=hidden.device)
            flags = flag_massive(hidden, index, site.min_abs, site.min_ratio)   # (b, T, c)
            sums[site.block] += (hidden[..., index].double() * flags).sum(dim=(0, 1)).cpu()
            counts[site.block] += flags.sum(dim=(0, 1)).cpu().double()
            total = hidden.double().sum(dim=(0, 1)).cpu()
            channel_sums[site.block] = channel_sums.get(site.block, 0) + total
        return hook

    handles = [modules[s.block].register_forward_hook(hook_for(s)) for s in sites]
    try:
        for batch in calib_ids.split(batch_size):
            model(batch.to(model_device(model)), use_cache=False)
            positions[0] += batch.numel()
    finally:
        for handle in handles:
            handle.remove()
    return BlockMeans(_with_means(sites, sums, counts),
                      {b: (s / positions[0]).float() for b, s in channel_sums.items()})


def _with_means(sites, sums, counts) -> list[MassiveSites]:
    kept = []
    for site in sites:
        found = [i for i, c in enumerate(site.channels) if counts[site.block][i] > 0]
        if found:
            kept.append(MassiveSites(
                site.block, site.block_index, [site.channels[i] for i in found], site.min_abs,
                site.min_ratio,
                means={site.channels[i]: float(sums[site.block][i] / counts[site.block][i])
                       for i in found},
                counts={site.channels[i]: int(counts[site.block][i]) for i in found}))
    if not kept:
        raise ValueError("no massive activations pass the rule per window in any block")
    return kept


@contextlib.contextmanager
def replace_in_all_blocks(model: nn.Module, sites: list[MassiveSites],
                          mode: str) -> Iterator[dict]:
    """Every site's massive entries set to zero or to their mean while inside (one hook per block,
    each the one-block intervention of ``why_activations``); all removed on exit.

    Yields:
        counts summed over blocks (filled on exit): replaced, first_token.
    """
    total = {"replaced": 0, "first_token": 0}
    with contextlib.ExitStack() as stack:
        counters = [stack.enter_context(replace_massive_activations(model, site, mode))
                    for site in sites]
        try:
            yield total
        finally:
            total["replaced"] = sum(c["replaced"] for c in counters)
            total["first_token"] = sum(c["first_token"] for c in counters)


def _random_entries(flags: torch.Tensor, hidden_size: int, channels: torch.Tensor,
                    generator: torch.Generator) -> torch.Tensor:
    """Bool (b, T, hidden): per window as many random non-massive entries as ``flags`` holds."""
    b, seq_len, _ = flags.shape
    massive = torch.zeros(b, seq_len, hidden_size, dtype=torch.bool)
    massive[..., channels] = flags.cpu()
    chosen = torch.zeros_like(massive)
    for w in range(b):
        k = int(massive[w].sum())
        if k:
            free = (~massive[w]).flatten().float()                 # (T * hidden,)
            picks = torch.multinomial(free, k, replacement=False, generator=generator)
            chosen[w].view(-1)[picks] = True
    return chosen


@contextlib.contextmanager
def replace_random_activations(model: nn.Module, means: BlockMeans, mode: str,
                               seed: int) -> Iterator[dict]:
    """The control: at every site block, random entries (as many per window as are massive) set
    to zero or to their channel's mean. Hooks removed on exit.

    Yields:
        ``{"replaced": n}`` entries overwritten.
    """
    if mode not in INTERVENTIONS:
        raise ValueError(f"mode must be one of {INTERVENTIONS}, got {mode!r}")
    generator = torch.Generator().manual_seed(seed)
    modules = dict(model.named_modules())
    counter = {"replaced": 0, "first_token": 0}

    def hook_for(site: MassiveSites):
        fill_values = means.channel_means[site.block]

        def hook(module, args, output):
            hidden = _hidden_of(output)
            index = torch.tensor(site.channels, device=hidden.device)
            flags = flag_massive(hidden, index, site.min_abs, site.min_ratio)
            chosen = _random_entries(flags, hidden.shape[-1], index.cpu(), generator)
            chosen = chosen.to(hidden.device)
            fill = (fill_values.to(hidden.device, hidden.dtype) if mode == "mean"
                    else torch.zeros((), dtype=hidden.dtype, device=hidden.device))
            changed = torch.where(chosen, fill.expand_as(hidden), hidden)
            counter["replaced"] += int(chosen.sum())
            counter["first_token"] += int(chosen[:, 0].sum())
            if isinstance(output, (tuple, list)):
                return type(output)((changed, *output[1:]))
            return changed
        return hook

    handles = [modules[s.block].register_forward_hook(hook_for(s)) for s in means.sites]
    try:
        yield counter
    finally:
        for handle in handles:
            handle.remove()
