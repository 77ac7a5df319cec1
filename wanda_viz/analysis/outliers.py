"""Emergent large-magnitude features: LLM.int8 outlier features and massive activations.

One dense calibration pass (``calibrate_blocks``, no pruning) records, per decoder block, the
per-channel magnitude of the residual stream (the block outputs), the per-channel magnitude of
the hidden states that enter the linear layers (``linear_inputs``), and, per prunable layer, the
Wanda statistic ``sqrt(input_sq_norm)`` per input channel. Definitions follow docs/PROTOCOLS.md:

* LLM.int8 outlier feature (Dettmers et al., arXiv 2208.07339, section 3.4): a hidden dimension
  with magnitude >= 6.0 in at least 25% of the layers and at least 6% of the sequence positions,
  measured on the X of ``X W``: the inputs of the attention projections and of the FFN's first
  layer (after the block's normalisation), NOT on the residual stream, whose magnitudes grow
  with depth in pre-norm models until every channel passes 6.0. Each such input is a "site"
  (LLaMA: two per block); a channel counts in a layer (decoder block) when |x| >= 6.0 on >= 6% of
  the positions of at least one of the block's sites.
* Massive activation (Sun et al., arXiv 2402.17762, section 2): a single activation with
  ``|h| > 100`` and ``|h| > 1000 x median(|h|)`` of its layer's hidden state, on the residual
  stream (block outputs); the paper plots per layer the top-1/2/3 magnitudes against the median.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from ..captions import calibration_caption
from ..sequential import calibrate_blocks
from .linear_inputs import record_linear_inputs

__all__ = [
    "OUTLIER_MAGNITUDE", "ActivationReport", "collect_activation_report", "layer_magnitude_table",
    "find_outlier_features", "find_massive_activations", "input_norm_table",
]

logger = logging.getLogger(__name__)

OUTLIER_MAGNITUDE = 6.0      # LLM.int8 magnitude threshold
MEDIAN_SAMPLE = 1 << 22      # median(|h|) is exact up to 4M activations per layer, else strided


@dataclass
class ActivationReport:
    """Residual-stream and layer-input magnitudes of a dense model on calibration windows.

    All tensors are float32 on CPU; the report is small and picklable (no model, no hidden states).

    Attributes:
        block_names: qualified decoder block names, e.g. "model.layers.3" (n_layers).
        channel_max: (n_layers, hidden_size) max |h| per channel over all tokens.
        channel_share: (n_layers, hidden_size) share of positions with |h| >= ``threshold``.
        median_abs: (n_layers,) median |h| over all activations of the block output.
        top: the ``top_k`` largest |h| per layer over distinct (position, channel) pairs (each at
            the window where it is largest): columns layer, block_index, rank, sample,
            position, channel, value (signed), abs, token_id, token.
        input_norms: per prunable layer, (in_features,) ``sqrt(input_sq_norm)`` (Wanda).
        site_names: the normalisation outputs that feed linear layers (LLM.int8's X),
            e.g. "model.layers.3.input_layernorm" (n_sites).
        site_blocks: per site, the index of its decoder block.
        site_readers: per site, the linear layers reading it (q/k/v_proj, gate/up_proj ...).
        site_channel_max: (n_sites, hidden_size) max |x| per channel of each linear input.
        site_channel_share: (n_sites, hidden_size) share of positions with |x| >= threshold.
        threshold: the magnitude used for the shares (6.0 for LLM.int8).
        n_positions: tokens seen per layer (n_samples * seq_len).
    """

    block_names: list[str]
    channel_max: torch.Tensor
    channel_share: torch.Tensor
    median_abs: torch.Tensor
    top: pd.DataFrame
    input_norms: dict[str, torch.Tensor] = field(default_factory=dict)
    site_names: list[str] = field(default_factory=list)
    site_blocks: list[int] = field(default_factory=list)
    site_readers: list[list[str]] = field(default_factory=list)
    site_channel_max: torch.Tensor | None = None
    site_channel_share: torch.Tensor | None = None
    threshold: float = OUTLIER_MAGNITUDE
    n_positions: int = 0
    calibration: dict | None = None
    model_name: str | None = None

    @property
    def n_layers(self) -> int:
        return len(self.block_names)

    @property
    def hidden_size(self) -> int:
        return int(self.channel_max.shape[1])

    def protocol(self) -> str:
        """Caption text: what data and thresholds produced the report."""
        return (f"dense model, {calibration_caption(self.calibration)}; "
                f"massive activations on the residual stream (decoder block outputs); LLM.int8 "
                f"features on the inputs of the linear layers (after each normalisation), "
                f"counted per decoder block; share = positions with |x| >= {self.threshold:g}")


def _block_stats(outputs: torch.Tensor, threshold: float, top_k: int,
                 chunk_size: int = 8) -> dict:
    """Per-channel max and share, median |h| and the top-k activations of one block's outputs.

    Top activations are distinct (position, channel) pairs, each at the window where it is
    largest, so one massive channel on the first token of every window fills one row, not all.
    """
    n, seq_len, hidden = outputs.shape  # (n, T, d)
    stride = max(1, outputs.numel() // MEDIAN_SAMPLE)
    channel_max, count = torch.zeros(hidden), torch.zeros(hidden)
    best = torch.zeros(seq_len, hidden)                      # (T, d) max |h| over windows
    best_sample = torch.zeros(seq_len, hidden, dtype=torch.long)
    sampled = []
    for start in range(0, n, chunk_size):
        magnitude = outputs[start:start + chunk_size].float().abs()  # (b, T, d)
        channel_max = torch.maximum(channel_max, magnitude.amax(dim=(0, 1)).cpu())
        count += (magnitude >= threshold).sum(dim=(0, 1)).cpu().float()
        chunk_best, chunk_arg = (t.cpu() for t in magnitude.max(dim=0))
        better = chunk_best > best
        best = torch.where(better, chunk_best, best)
        best_sample = torch.where(better, chunk_arg + start, best_sample)
        sampled.append(magnitude.flatten()[::stride].cpu())
    values, flat = torch.topk(best.flatten(), min(top_k, best.numel()))
    position, channel = flat // hidden, flat % hidden
    sample = best_sample.flatten()[flat]
    signed = outputs[sample.to(outputs.device), position.to(outputs.device),
                     channel.to(outputs.device)].float().cpu()
    return {"channel_max": channel_max, "share": count / (n * seq_len),
            "median": torch.cat(sampled).median(), "abs": values, "sample": sample,
            "position": position, "channel": channel, "value": signed}


def _top_records(step, stats: dict, calib_ids: torch.Tensor, tokenizer) -> list[dict]:
    """The top-k activations of one block as table rows, with the token that carries each."""
    rows = []
    columns = zip(stats["abs"].tolist(), stats["value"].tolist(), stats["sample"].tolist(),
                  stats["position"].tolist(), stats["channel"].tolist())
    for rank, (magnitude, value, sample, position, channel) in enumerate(columns, start=1):
        token_id = int(calib_ids[sample, position])
        rows.append({"layer": step.name, "block_index": step.index, "rank": rank,
                     "sample": sample, "position": position, "channel": channel,
                     "value": value, "abs": magnitude, "token_id": token_id,
                     "token": _decode(tokenizer, token_id)})
    return rows


def _decode(tokenizer, token_id: int) -> str:
    if tokenizer is None:
        return f"<{token_id}>"
    return tokenizer.decode([token_id])


@torch.no_grad()
def collect_activation_report(model: nn.Module, calib_ids: torch.Tensor, *, tokenizer=None,
                              threshold: float = OUTLIER_MAGNITUDE, top_k: int = 16,
                              batch_size: int = 8, offload: bool = False,
                              exec_device: str | torch.device = "auto",
                              calibration: dict | None = None,
                              model_name: str | None = None) -> ActivationReport:
    """One dense calibration pass recording residual-stream and layer-input magnitudes.

    Args:
        model: a dense causal LM (not modified).
        calib_ids: (n_samples, seq_len) token ids.
        tokenizer: decodes the tokens carrying the largest activations (optional).
        threshold: magnitude for the per-channel share of positions (LLM.int8: 6.0).
        top_k: largest activations kept per layer, one per (position, channel) pair
            (candidates for massive activations and the top-1/2/3 table).
        batch_size: windows per forward pass through a block.
        offload / exec_device: keep the model where it is and move one block at a time to
            ``exec_device`` (as ``PruneConfig.offload``), for models larger than the GPU.
        calibration / model_name: descriptions stored in the report for captions.
    Returns:
        ActivationReport with CPU tensors and a pandas table of the top activations.
    """
    if top_k < 3 or threshold <= 0:
        raise ValueError(f"need top_k >= 3 (top-1/2/3 table) and threshold > 0, got top_k="
                         f"{top_k}, threshold={threshold}")
    names, maxima, shares, medians, top_rows, input_norms = [], [], [], [], [], {}
    n, seq_len = calib_ids.shape
    with record_linear_inputs(model, threshold) as sites:
        for step in calibrate_blocks(model, calib_ids, batch_size=batch_size, offload=offload,
                                     exec_device=exec_device, desc="activations"):
            stats = _block_stats(step.outputs, threshold, top_k)
            names.append(step.name)
            maxima.append(stats["channel_max"])
            shares.append(stats["share"])
            medians.append(stats["median"])
            top_rows += _top_records(step, stats, calib_ids, tokenizer)
            for name, layer_stats in step.stats.items():
                input_norms[name] = layer_stats.input_sq_norm.sqrt().cpu()
    hidden = maxima[0].numel()
    sites = [site for site in sites if site.channel_max.numel() == hidden]
    columns = ["layer", "block_index", "rank", "sample", "position", "channel", "value", "abs",
               "token_id", "token"]
    return ActivationReport(
        block_names=names, channel_max=torch.stack(maxima), channel_share=torch.stack(shares),
        median_abs=torch.stack(medians), top=pd.DataFrame(top_rows, columns=columns),
        input_norms=input_norms, site_names=[s.name for s in sites],
        site_blocks=[s.block_index for s in sites],
        site_readers=[s.readers for s in sites],
        site_channel_max=torch.stack([s.channel_max for s in sites]) if sites else None,
        site_channel_share=torch.stack([s.share for s in sites]) if sites else None,
        threshold=threshold, n_positions=n * seq_len,
        calibration=calibration, model_name=model_name)


def layer_magnitude_table(report: ActivationReport) -> pd.DataFrame:
    """Per layer: top-1/2/3 |h| and the median (the Massive Activations paper's figure).

    Returns:
        DataFrame with columns layer, top1, top2, top3, median, top1_over_median.
    """
    rows = []
    for index, name in enumerate(report.block_names):
        top = report.top[report.top["block_index"] == index].sort_values("rank")["abs"].tolist()
        top = (top + [float("nan")] * 3)[:3]
        median = float(report.median_abs[index])
        rows.append({"layer": name, "top1": top[0], "top2": top[1], "top3": top[2],
                     "median": median,
                     "top1_over_median": top[0] / median if median > 0 else float("inf")})
    return pd.DataFrame(rows, columns=["layer", "top1", "top2", "top3", "median",
                                       "top1_over_median"])


def find_outlier_features(report: ActivationReport, *, magnitude: float | None = None,
                          min_layer_share: float = 0.25,
                          min_position_share: float = 0.06) -> pd.DataFrame:
    """LLM.int8 outlier features: channels with |x| >= magnitude in enough layers and positions.

    Measured on the hidden states entering the linear layers (``report.site_*``: attention and
    FFN inputs after normalisation), as Dettmers et al. do. A channel counts in a layer (decoder
    block) when at least ``min_position_share`` of the positions of one of the block's sites have
    |x| >= ``magnitude``; it is an outlier feature when it counts in at least
    ``min_layer_share`` of the layers.

    Args:
        report: from ``collect_activation_report``.
        magnitude: must equal ``report.threshold`` (the share is recorded for that magnitude);
            None = the report's.
    Returns:
        DataFrame sorted by max magnitude: channel, n_layers, layer_share, layers (list of block
        names), sites (the linear inputs where it counts), max_abs, mean_position_share (over
        those sites). Empty when no normalisation output feeds a linear layer (no sites).
    """
    if magnitude is not None and abs(magnitude - report.threshold) > 1e-12:
        raise ValueError(f"the report recorded shares for |h| >= {report.threshold:g}; collect it "
                         f"again with threshold={magnitude:g}")
    columns = ["channel", "n_layers", "layer_share", "layers", "sites", "max_abs",
               "mean_position_share"]
    if report.site_channel_share is None:
        return pd.DataFrame([], columns=columns)
    counts = report.site_channel_share >= min_position_share  # (n_sites, d)
    in_block = torch.zeros(report.n_layers, counts.shape[1], dtype=torch.bool)  # (n_layers, d)
    for site, block in enumerate(report.site_blocks):  # any site of the block counts
        in_block[block] |= counts[site]
    n_layers_hit = in_block.sum(dim=0)
    rows = []
    for channel in torch.nonzero(n_layers_hit >= max(min_layer_share * report.n_layers, 1)
                                 ).flatten().tolist():
        hit, blocks = counts[:, channel], in_block[:, channel]
        rows.append({
            "channel": channel, "n_layers": int(blocks.sum()),
            "layer_share": float(blocks.float().mean()),
            "layers": [name for name, h in zip(report.block_names, blocks.tolist()) if h],
            "sites": [name for name, h in zip(report.site_names, hit.tolist()) if h],
            "max_abs": float(report.site_channel_max[:, channel].max()),
            "mean_position_share": float(report.site_channel_share[hit, channel].mean())})
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values("max_abs", ascending=False, ignore_index=True)


def find_massive_activations(report: ActivationReport, *, min_abs: float = 100.0,
                             min_ratio: float = 1000.0) -> pd.DataFrame:
    """Massive activations: single |h| > ``min_abs`` and > ``min_ratio`` x median(|h|) of the layer.

    Only the ``top_k`` largest (position, channel) pairs per layer are recorded, so at most that
    many per layer can be reported (the paper finds a handful per layer); ``sample`` is the
    window where the pair is largest.

    Returns:
        DataFrame: layer, block_index, sample, position, channel, value, abs, ratio_to_median,
        token_id, token.
    """
    top = report.top.copy()
    medians = report.median_abs.tolist()
    top["ratio_to_median"] = top["abs"] / top["block_index"].map(
        lambda i: max(medians[i], 1e-30))
    keep = (top["abs"] > min_abs) & (top["ratio_to_median"] > min_ratio)
    columns = ["layer", "block_index", "sample", "position", "channel", "value", "abs",
               "ratio_to_median", "token_id", "token"]
    return top.loc[keep, columns].reset_index(drop=True)


def input_norm_table(report: ActivationReport, layer: str, top_k: int | None = None) -> pd.DataFrame:
    """Per input channel of ``layer``: ``sqrt(input_sq_norm)`` (Wanda), largest first.

    Returns:
        DataFrame: channel, input_norm, ratio_to_median.
    """
    if layer not in report.input_norms:
        raise ValueError(f"unknown layer {layer!r}; the report has {len(report.input_norms)} "
                         "layers, e.g. " + ", ".join(list(report.input_norms)[:3]))
    norms = report.input_norms[layer]
    median = float(norms.median()) or 1e-30
    table = pd.DataFrame({"channel": range(norms.numel()), "input_norm": norms.tolist()})
    table["ratio_to_median"] = table["input_norm"] / median
    table = table.sort_values("input_norm", ascending=False, ignore_index=True)
    return table.head(top_k) if top_k else table
