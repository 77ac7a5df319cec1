"""Test oracle: a device-agnostic port of the official RIA code, used only by the tests.

Source (ported for testing, logic kept operation for operation):
  https://github.com/biomedical-cybernetics/Relative-importance-and-activation-pruning
  (Zhang et al., ICLR 2024, "Plug-and-Play: An Efficient Post-training Pruning Method for Large
  Language Models"), commit 7bc55b0:
    - lib/prune.py ``prune_ria``: the ``ria`` score ``(|W|/sum(|W|, dim=0) + |W|/sum(|W|, dim=1)
      .reshape(-1, 1)) * (sqrt(scaler_row))**a``; the unstructured masks (``--per_outneuron``:
      per-row stable sort; default: ``W_metric <= sort(flat)[int(rows * cols * ratio)]``); the
      direct N:M ``topk`` loop (the ``--reallocation`` / ``--lsa`` branches are not ported);
    - lib/prune.py ``prune_magnitude`` for ``ri`` (``per_outneuron = False`` hard-coded there);
    - lib/layerwrapper.py ``WrappedGPT.add_batch``: ``scaler_row`` is the same running mean as
      Wanda's (the ``out`` statistics of up/gate are never read by ``prune_ria``), so Wanda's
      port in reference_impl.py serves, with its sequential loop (RIA's is the same: hooks, one
      window per forward, prune, run the block again).
Licence: the repository has no licence file at that commit; this is a re-implementation of its
logic for testing with attribution, not a copy of the file.
Changes, nothing else: no ``.cuda()`` in the sort, no ``args`` (``a``, ``per_outneuron``, sparsity,
N:M are parameters), no gptq/reconstruction/semi-structured branches, prints dropped; every function
returns the prune masks it applied (True = PRUNED, the official polarity) by qualified layer name.
"""
from __future__ import annotations

import torch

import reference_impl as ref

__all__ = ["ria_metric", "ri_metric", "ria_mask", "prune_ria", "prune_ri"]


def ri_metric(W):
    return torch.abs(W) / torch.sum(torch.abs(W), dim=0) + \
        torch.abs(W) / torch.sum(torch.abs(W), dim=1).reshape(-1, 1)


def ria_metric(W, scaler_row, a=0.5):
    return ri_metric(W) * (torch.sqrt(scaler_row.reshape((1, -1)))) ** a


def ria_mask(W_metric, sparsity_ratio, prune_n=0, prune_m=0, per_outneuron=False):
    """The mask choice of ``prune_ria`` (and of ``prune_magnitude`` with per_outneuron=False)."""
    W_mask = (torch.zeros_like(W_metric) == 1)
    if prune_n != 0:
        return ref._nm_mask(W_metric, prune_n, prune_m)
    if per_outneuron:
        sort_res = torch.sort(W_metric, dim=-1, stable=True)
        indices = sort_res[1][:, :int(W_metric.shape[1] * sparsity_ratio)]
        W_mask.scatter_(1, indices, True)
        return W_mask
    thresh = torch.sort(W_metric.flatten())[0][int(W_metric.shape[0] * W_metric.shape[1]
                                                   * sparsity_ratio)]
    return W_metric <= thresh


def prune_ria(model, dataloader, sparsity_ratio, prune_n=0, prune_m=0, a=0.5,
              per_outneuron=False, device=torch.device("cpu")):
    """lib/prune.py prune_ria with ``--prune_method ria``."""
    def prune_layer(layer, wrapped):
        W = layer.weight.data.clone()
        W_metric = ria_metric(W, wrapped.scaler_row, a)
        W_mask = ria_mask(W_metric, sparsity_ratio, prune_n, prune_m, per_outneuron)
        layer.weight.data[W_mask] = 0
        return W_mask

    return ref._prune_sequential(model, dataloader, device, ref.WrappedGPT, prune_layer)


@torch.no_grad()
def prune_ri(model, sparsity_ratio, prune_n=0, prune_m=0):
    """lib/prune.py prune_magnitude with ``--prune_method ri`` (no calibration)."""
    layers, prefix = ref.decoder_layers(model)
    masks = {}
    for i in range(len(layers)):
        subset = ref.find_layers(layers[i])
        for name in subset:
            W = subset[name].weight.data.clone()
            W_mask = ria_mask(ri_metric(W), sparsity_ratio, prune_n, prune_m, per_outneuron=False)
            subset[name].weight.data[W_mask] = 0
            masks[f"{prefix}.{i}.{name}"] = W_mask.cpu()
    return masks
