"""Pruning meets sinks: how many of the weights that read the massive channels each method keeps.

For magnitude (|W|, per layer) and Wanda (|W| x ||X_j||, per output row), both at the same
sparsity on the dense weights with the dense model's input norms (as ``why.channel_disagreement``),
the share of the weights in the columns of the "massive channels" each keeps, per layer and per
module type. DaSS (arXiv 2405.01943) argues that in GLU models the outlier effect sits mostly in
some modules (gate/up); this measures it instead of assuming it.

Which input channels are massive depends on what a layer reads:

* a layer reading a normalised residual stream (q/k/v, gate/up; the activation report's
  ``site_readers``): the residual channels that carry massive activations at the output of an
  earlier block (``find_massive_activations``, block index < the layer's block);
* any other layer (o_proj, down_proj ...): the channels of its OWN input with an entry
  ``|x| > min_abs`` and ``> min_ratio x`` the median ``|x|`` of that input over the calibration
  windows (strided sample), e.g. the intermediate channel of down_proj that writes the massive
  activation.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from ..cancel import CancelToken, check_cancelled
from ..layers import find_decoder_layers, find_prunable_layers, model_device, weight_matrix
from ..pruning import get_method, magnitude_scores, topk_keep_mask, wanda_scores
from .outliers import ActivationReport, find_massive_activations

__all__ = ["InputPeaks", "collect_input_peaks", "massive_columns", "PRUNING_COLUMNS",
           "KIND_COLUMNS", "kept_on_massive", "summarize_by_kind"]

MEDIAN_SAMPLES = 1 << 16   # |x| entries sampled per batch and layer for the median
PRUNING_COLUMNS = ["layer", "kind", "block_index", "source", "channels", "weights",
                   "kept_magnitude", "kept_wanda"]
KIND_COLUMNS = ["kind", "layers", "weights", "kept_magnitude", "kept_wanda", "share_magnitude",
                "share_wanda"]


@dataclass
class InputPeaks:
    """Per prunable layer: max |x| per input channel, and the median |x| (sampled)."""

    channel_max: dict[str, torch.Tensor]
    median: dict[str, float]


@torch.no_grad()
def collect_input_peaks(model: nn.Module, calib_ids: torch.Tensor, *, batch_size: int = 8,
                        cancel: CancelToken | None = None) -> InputPeaks:
    """One dense pass with a pre-hook on every prunable layer (removed on return)."""
    prefix, blocks = find_decoder_layers(model)
    layers = find_prunable_layers(blocks, prefix)
    peaks: dict[str, torch.Tensor] = {}
    samples: dict[str, list[torch.Tensor]] = {name: [] for name in layers}

    def hook_for(name: str):
        def hook(module, args):
            x = args[0].detach().float().abs().reshape(-1, args[0].shape[-1])   # (tokens, in)
            peak = x.amax(dim=0).cpu()
            peaks[name] = peak if name not in peaks else torch.maximum(peaks[name], peak)
            stride = max(1, x.numel() // MEDIAN_SAMPLES)
            samples[name].append(x.flatten()[::stride].cpu())
        return hook

    handles = [layer.register_forward_pre_hook(hook_for(name)) for name, layer in layers.items()]
    try:
        for batch in calib_ids.split(batch_size):
            check_cancelled(cancel)
            model(batch.to(model_device(model)), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return InputPeaks(peaks, {name: float(torch.cat(s).median()) for name, s in samples.items()})


def _block_of(layer: str, prefix: str) -> int:
    return int(layer[len(prefix) + 1:].split(".")[0])


def massive_columns(report: ActivationReport, peaks: InputPeaks, *, min_abs: float = 100.0,
                    min_ratio: float = 1000.0) -> dict[str, tuple[str, list[int]]]:
    """Per prunable layer: (source, massive input channels); source "residual" or "input"."""
    massive = find_massive_activations(report, min_abs=min_abs, min_ratio=min_ratio)
    prefix = report.block_names[0].rsplit(".", 1)[0]
    readers = {name for names in report.site_readers for name in names}
    columns = {}
    for layer, peak in peaks.channel_max.items():
        block = _block_of(layer, prefix)
        if layer in readers:
            earlier = massive[massive["block_index"] < block]
            columns[layer] = ("residual", sorted({int(c) for c in earlier["channel"]}))
        else:
            hit = (peak > min_abs) & (peak > min_ratio * peaks.median[layer])
            columns[layer] = ("input", torch.nonzero(hit).flatten().tolist())
    return columns


def _kind(layer: str) -> str:
    return layer.rsplit(".", 1)[-1]


@torch.no_grad()
def kept_on_massive(model: nn.Module, report: ActivationReport,
                    columns: dict[str, tuple[str, list[int]]],
                    sparsity: float = 0.5) -> pd.DataFrame:
    """Per layer with massive columns: weights in them and how many each method keeps.

    Returns:
        DataFrame with ``PRUNING_COLUMNS`` (layers without massive columns are left out).
    """
    if not 0.0 < sparsity < 1.0:
        raise ValueError(f"sparsity must be in (0, 1), got {sparsity}")
    modules = dict(model.named_modules())
    prefix = report.block_names[0].rsplit(".", 1)[0]
    rows = []
    for layer, (source, channels) in columns.items():
        if not channels:
            continue
        weight = weight_matrix(modules[layer]).detach().float().cpu()   # (out, in)
        wanda = topk_keep_mask(wanda_scores(weight, report.input_norms[layer].square()),
                               sparsity, get_method("wanda").default_group)
        magnitude = topk_keep_mask(magnitude_scores(weight), sparsity,
                                   get_method("magnitude").default_group)
        index = torch.tensor(channels)
        rows.append({"layer": layer, "kind": _kind(layer), "block_index": _block_of(layer, prefix),
                     "source": source, "channels": channels,
                     "weights": weight.shape[0] * len(channels),
                     "kept_magnitude": int(magnitude[:, index].sum()),
                     "kept_wanda": int(wanda[:, index].sum())})
    return pd.DataFrame(rows, columns=PRUNING_COLUMNS)


def summarize_by_kind(table: pd.DataFrame) -> pd.DataFrame:
    """Per module type (the layer's last name: q_proj, down_proj ...): kept shares, summed."""
    rows = []
    for kind, part in table.groupby("kind", sort=False):
        weights = int(part["weights"].sum())
        kept_m, kept_w = int(part["kept_magnitude"].sum()), int(part["kept_wanda"].sum())
        rows.append({"kind": kind, "layers": len(part), "weights": weights,
                     "kept_magnitude": kept_m, "kept_wanda": kept_w,
                     "share_magnitude": kept_m / weights, "share_wanda": kept_w / weights})
    return pd.DataFrame(rows, columns=KIND_COLUMNS)
