"""Test oracle: a device-agnostic port of the official DSnoT code, used only by the tests.

Source (ported for testing, logic kept operation for operation):
  https://github.com/zyxxmu/DSnoT (Zhang et al., ICLR 2024, "Dynamic Sparse No Training:
  Training-Free Fine-tuning for Sparse LLMs"), commit 4c029df:
    - lib/layerwrapper.py ``WrappedGPT`` (``scaler_row``, ``sum_metric_row``, ``mean``, ``var``);
    - lib/prune.py ``return_reorder_indice`` and ``prune_DSnoT`` (the per-layer body, both the
      N:M and the unstructured branch, and its sequential loop); defaults of main.py.
Licence: the repository has no licence file at that commit; this is a re-implementation of its
logic for testing with attribution, not a copy of the file.
Changes, nothing else: no CUDA / ``hf_device_map``, ``args`` replaced by ``Args``, the calibration
windows are passed in, the Catcher and block loop are reference_impl.py's (every keyword argument
kept); the per-layer body is split into its two branches and returns its prune mask (True = PRUNED),
the loop returns them by qualified name; the unstructured branch's six pointer lines, repeated for
the growing and the pruning list, are written once (``_pointer_step``), in the official order.
NOTE: over the 300-line file budget on purpose: a port that stays next to the original is easier
to audit than a compressed one.
NOTE the official wrapper allocates ``H`` for ``initial_method == "sparsegpt"`` but ``add_batch``
never accumulates it: the official SparseGPT initial metric is computed from H = 0, so every column
is "dead", W is zeroed and the metric is all zeros (the stable sort then prunes the first k columns
of every row). ``WrappedGPT(accumulate_hessian=True)`` adds SparseGPT's ``add_batch`` lines; that
is what our engine implements and the tests compare with; ``False`` is the official behaviour.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

import reference_impl as ref

__all__ = ["Args", "WrappedGPT", "return_reorder_indice", "dsnot_layer_mask", "prune_DSnoT"]


@dataclass
class Args:
    """main.py defaults (``sparsity_ratio`` and ``initial_method`` have none)."""
    sparsity_ratio: float = 0.5
    initial_method: str = "wanda"
    max_cycle_time: int = 50
    update_threshold: float = 0.1
    pow_of_var_regrowing: float = 1
    skip_layer: str = "mlp"
    skip_sub_layer: str = "no_skip"
    without_same_sign: bool = True
    without_DSnoT: bool = False


class WrappedGPT:
    def __init__(self, layer, initial_method=None, accumulate_hessian=False):
        self.layer = layer
        self.dev = self.layer.weight.device
        self.rows = layer.weight.data.shape[0]
        self.columns = layer.weight.data.shape[1]
        self.nsamples = 0
        self.initial_method = initial_method
        self.accumulate_hessian = accumulate_hessian and initial_method == "sparsegpt"
        if self.initial_method == "sparsegpt":
            self.H = torch.zeros((self.columns, self.columns), device=self.dev)
        self.scaler_row = torch.zeros((self.columns), device=self.dev)
        self.sum_metric_row = torch.zeros((self.columns), device=self.dev)
        self.mean = torch.zeros((self.columns), device=self.dev)
        self.var = torch.zeros((self.columns), device=self.dev)
        self.ntokens = 0

    def add_batch(self, inp, out):
        if len(inp.shape) == 2:
            inp = inp.unsqueeze(0)
        tmp = inp.shape[0]
        if isinstance(self.layer, nn.Linear):
            if len(inp.shape) == 3:
                inp = inp.reshape((-1, inp.shape[-1]))
            inp = inp.t()
        inp = inp.type(torch.float32)
        mean_inp = torch.mean(inp, dim=1, keepdim=True)
        var_inp = torch.var(inp, dim=1, unbiased=False, keepdim=True)
        num_inp = inp.shape[1]
        self.var = var_inp if self.ntokens == 0 else \
            (self.var * self.ntokens + var_inp * num_inp) / (self.ntokens + num_inp)
        self.mean = mean_inp if self.ntokens == 0 else \
            (self.mean * self.ntokens + mean_inp * num_inp) / (self.ntokens + num_inp)
        self.ntokens += num_inp
        if self.accumulate_hessian:  # NOT official (see the module docstring)
            self.H *= self.nsamples / (self.nsamples + tmp)
        self.scaler_row *= self.nsamples / (self.nsamples + tmp)
        self.sum_metric_row *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        self.scaler_row += torch.norm(inp, p=2, dim=1) ** 2 / self.nsamples
        self.sum_metric_row += torch.sum(inp, dim=1) / self.nsamples
        if self.accumulate_hessian:
            scaled = math.sqrt(2 / self.nsamples) * inp.float()
            self.H += scaled.matmul(scaled.t())


def return_reorder_indice(input_tensor):
    positive_tensor = input_tensor.clone()
    negative_tensor = input_tensor.clone()
    positive_mask = positive_tensor > 0
    negative_mask = negative_tensor < 0
    positive_indices = torch.arange(0, input_tensor.shape[1], device=input_tensor.device) \
        .to(torch.float64).repeat(input_tensor.shape[0], 1)
    negative_indices = torch.arange(0, input_tensor.shape[1], device=input_tensor.device) \
        .to(torch.float64).repeat(input_tensor.shape[0], 1)
    positive_indices[~positive_mask] = float("inf")
    negative_indices[~negative_mask] = float("inf")
    positive_value, _ = torch.sort(positive_indices, dim=1)
    negative_value, _ = torch.sort(negative_indices, dim=1)
    positive_value = torch.flip(positive_value, dims=[1])
    negative_value[negative_value == float("inf")] = 0
    positive_value[positive_value == float("inf")] = 0
    return (positive_value + negative_value).to(torch.int64)


def initial_metric_of(layer, wrapped, initial_method):
    """The three ``initial_metric`` choices of prune_DSnoT."""
    if initial_method == "wanda":
        return torch.abs(layer.weight.data) * torch.sqrt(wrapped.scaler_row.reshape((1, -1)))
    if initial_method == "magnitude":
        return torch.abs(layer.weight.data)
    W = layer.weight.data.clone().float()
    H = wrapped.H
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = 0.01 * torch.mean(torch.diag(H))
    diag = torch.arange(wrapped.columns, device=wrapped.dev)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    Hinv = torch.linalg.cholesky(H, upper=True)
    return W ** 2 / (torch.diag(Hinv).reshape((1, -1))) ** 2


def _nm_branch(name, layer, wrapped, args, prune_n, prune_m, DSnoT_metric, initial_metric):
    weight_mask = torch.zeros_like(initial_metric) == 1
    if name.split(".")[0] == args.skip_layer or name.split(".")[1] == args.skip_sub_layer:
        for ii in range(initial_metric.shape[1]):
            if ii % prune_m == 0:
                tmp = initial_metric[:, ii:(ii + prune_m)].float()
                weight_mask.scatter_(1, ii + torch.topk(tmp, prune_n, dim=1, largest=False)[1],
                                     True)
        return weight_mask
    initial_prune_indices = torch.zeros((initial_metric.shape[0], 0), dtype=torch.int64)
    initial_res_indices = torch.zeros((initial_metric.shape[0], 0), dtype=torch.int64)
    for ii in range(initial_metric.shape[1]):
        if ii % prune_m == 0:
            tmp = initial_metric[:, ii:(ii + prune_m)].float()
            _, tmp_all_indices = torch.sort(tmp, dim=1)
            tmp_all_indices += ii
            res_prune_n = prune_m - prune_n
            tmp_indices, tmp_res_indices = torch.split(
                tmp_all_indices, split_size_or_sections=[prune_n, res_prune_n], dim=1)
            initial_prune_indices = torch.cat((initial_prune_indices, tmp_indices), dim=1)
            initial_res_indices = torch.cat((initial_res_indices, tmp_res_indices), dim=1)
            weight_mask.scatter_(1, tmp_indices, True)
    metric_for_regrowing = DSnoT_metric.clone()
    metric_for_regrowing.scatter_(1, initial_res_indices, 0)
    reconstruction_error = torch.sum(metric_for_regrowing, dim=1, keepdim=True)
    initialize_error_sign = torch.sign(reconstruction_error)
    if args.pow_of_var_regrowing:
        metric_for_regrowing /= torch.pow(wrapped.var.reshape((1, -1)), args.pow_of_var_regrowing)
    _, regrowing_indices_block = torch.sort(metric_for_regrowing, dim=1, stable=True)
    indice_indice_list_for_regrowing = torch.zeros((reconstruction_error.shape[0], 2),
                                                   dtype=torch.long)
    last_one = regrowing_indices_block.shape[-1] - 1
    indice_indice_list_for_regrowing[:, 1] = last_one
    update_num_for_regrowing = torch.ones((reconstruction_error.shape[0], 2), dtype=torch.long)
    update_num_for_regrowing[:, 1] = -1
    initial_metric.scatter_(1, initial_prune_indices, float("inf"))
    W_metric_max_value = torch.max(initial_metric, dim=1, keepdim=True)[0] + 1
    cycle_time = 1
    update_mask = torch.ones_like(reconstruction_error, dtype=torch.bool)
    while not (torch.all(update_mask == False) or cycle_time > args.max_cycle_time):  # noqa: E712
        cycle_time += 1
        indice_of_indice_indice_list_for_regrowing = (reconstruction_error > 0).int().to(
            torch.int64)
        indice_indice_for_regrowing = torch.gather(indice_indice_list_for_regrowing, 1,
                                                   indice_of_indice_indice_list_for_regrowing)
        regrowing_indice = torch.gather(regrowing_indices_block, 1,
                                        indice_indice_for_regrowing.to(torch.int64))
        regrowing_metric = DSnoT_metric.gather(1, regrowing_indice.to(torch.int64))
        recover_block_start_indice = regrowing_indice - regrowing_indice % prune_m
        recover_block_indices = torch.arange(0, prune_m).repeat(
            recover_block_start_indice.shape[1], 1) + recover_block_start_indice
        pruning_block = torch.gather(initial_metric, 1, recover_block_indices.to(torch.int64))
        pruning_wanda_metric, pruning_indice = torch.topk(pruning_block, 1, dim=1, largest=False)
        pruning_indice += recover_block_start_indice
        pruning_metric = DSnoT_metric.gather(1, pruning_indice.to(torch.int64))
        reconstruction_error_after = reconstruction_error + pruning_metric - regrowing_metric
        update_mask = (update_mask & (initialize_error_sign == torch.sign(
            reconstruction_error_after)) & (abs(reconstruction_error) > args.update_threshold))
        initial_metric.scatter_(1, pruning_indice, W_metric_max_value)
        weight_mask.scatter_(1, pruning_indice, update_mask)
        weight_mask.scatter_(1, regrowing_indice, ~update_mask)
        reconstruction_error += torch.where(update_mask, pruning_metric,
                                            torch.zeros_like(pruning_metric))
        reconstruction_error -= torch.where(update_mask, regrowing_metric,
                                            torch.zeros_like(regrowing_metric))
        indice_indice_list_for_regrowing.scatter_(
            1, indice_of_indice_indice_list_for_regrowing,
            indice_indice_for_regrowing + update_num_for_regrowing.gather(
                1, indice_of_indice_indice_list_for_regrowing))
    return weight_mask


def _pointer_step(indice_list, update_num, side, block):
    """gather the pointer on ``side``, the index it points at, and advance it (both branches'
    six official lines for one list, written once)."""
    indice_indice = torch.gather(indice_list, 1, side)
    indice = torch.gather(block, 1, indice_indice.to(torch.int64))
    indice_list.scatter_(1, side, indice_indice + update_num.gather(1, side))
    return indice


def _unstructured_branch(name, layer, wrapped, args, DSnoT_metric, initial_metric):
    weight_mask = torch.zeros_like(initial_metric) == 1
    _, sorted_initial_indice = torch.sort(initial_metric, dim=-1, stable=True)
    sparsity_num = int(initial_metric.shape[1] * args.sparsity_ratio)
    res_sparsity_num = sorted_initial_indice.shape[1] - sparsity_num
    initial_prune_indices, initial_res_indices = torch.split(
        sorted_initial_indice, split_size_or_sections=[sparsity_num, res_sparsity_num], dim=1)
    weight_mask.scatter_(1, initial_prune_indices, True)
    if name.split(".")[0] == args.skip_layer or name.split(".")[1] == args.skip_sub_layer \
            or args.without_DSnoT:
        return weight_mask
    metric_for_regrowing = DSnoT_metric.clone()
    wanda_metric = torch.abs(layer.weight.data) * torch.sqrt(wrapped.scaler_row.reshape((1, -1)))
    metric_for_regrowing.scatter_(1, initial_res_indices, 0)
    reconstruction_error = torch.sum(metric_for_regrowing, dim=1, keepdim=True)
    initialize_error_sign = torch.sign(reconstruction_error)
    if args.pow_of_var_regrowing:
        metric_for_regrowing /= torch.pow(wrapped.var.reshape((1, -1)), args.pow_of_var_regrowing)
    _, regrowing_indices_block = torch.sort(metric_for_regrowing, dim=1, stable=True)
    wanda_metric.scatter_(1, initial_prune_indices, float("inf"))
    wanda_res_indices, _ = torch.split(torch.sort(wanda_metric, dim=1, stable=True)[1],
                                       split_size_or_sections=[res_sparsity_num, sparsity_num],
                                       dim=1)
    reorder_indice_of_pruning_indice = return_reorder_indice(
        torch.gather(DSnoT_metric, 1, wanda_res_indices))
    pruning_indices_block = torch.gather(wanda_res_indices, 1, reorder_indice_of_pruning_indice)
    rows = reconstruction_error.shape[0]
    lists = {}
    for key, block in (("regrowing", regrowing_indices_block), ("pruning", pruning_indices_block)):
        indice_list = torch.zeros((rows, 2), dtype=torch.long)
        indice_list[:, 1] = block.shape[-1] - 1
        update_num = torch.ones((rows, 2), dtype=torch.long)
        update_num[:, 1] = -1
        lists[key] = (indice_list, update_num, block)
    update_mask = torch.ones_like(reconstruction_error, dtype=torch.bool)
    cycle_time = 0
    while not (torch.all(update_mask == False) or cycle_time >= args.max_cycle_time):  # noqa: E712
        cycle_time += 1
        regrowing_indice = _pointer_step(*lists["regrowing"][:2],
                                         (reconstruction_error > 0).int().to(torch.int64),
                                         lists["regrowing"][2])
        regrowing_metric = DSnoT_metric.gather(1, regrowing_indice.to(torch.int64))
        pruning_indice = _pointer_step(*lists["pruning"][:2],
                                       (reconstruction_error < 0).int().to(torch.int64),
                                       lists["pruning"][2])
        pruning_metric = DSnoT_metric.gather(1, pruning_indice.to(torch.int64))
        reconstruction_error_after = reconstruction_error + pruning_metric - regrowing_metric
        if args.without_same_sign:
            update_mask = update_mask & (abs(reconstruction_error) > args.update_threshold)
        else:
            update_mask = update_mask & (abs(reconstruction_error) > args.update_threshold) & (
                initialize_error_sign == torch.sign(reconstruction_error_after))
        weight_mask.scatter_(1, pruning_indice, update_mask)
        weight_mask.scatter_(1, regrowing_indice, ~update_mask)
        reconstruction_error += torch.where(update_mask, pruning_metric,
                                            torch.zeros_like(pruning_metric))
        reconstruction_error -= torch.where(update_mask, regrowing_metric,
                                            torch.zeros_like(regrowing_metric))
    return weight_mask


def dsnot_layer_mask(name, layer, wrapped, args, prune_n=0, prune_m=0):
    """The per-layer body of prune_DSnoT: the prune mask (True = pruned) of one layer."""
    DSnoT_metric = layer.weight.data * wrapped.sum_metric_row.reshape((1, -1))
    initial_metric = initial_metric_of(layer, wrapped, args.initial_method)
    if prune_n != 0:
        return _nm_branch(name, layer, wrapped, args, prune_n, prune_m, DSnoT_metric,
                          initial_metric)
    return _unstructured_branch(name, layer, wrapped, args, DSnoT_metric, initial_metric)


@torch.no_grad()
def prune_DSnoT(model, dataloader, args: Args, prune_n=0, prune_m=0, accumulate_hessian=False,
                device=torch.device("cpu")):
    """prune_DSnoT's sequential loop: calibrate block i one window at a time, prune, re-run."""
    use_cache = model.config.use_cache
    model.config.use_cache = False
    inps, outs, kwargs = ref.prepare_calibration_input(model, dataloader, device)
    layers, prefix = ref.decoder_layers(model)
    masks = {}
    for i in range(len(layers)):
        layer = layers[i]
        subset = ref.find_layers(layer)
        wrapped = {name: WrappedGPT(subset[name], args.initial_method, accumulate_hessian)
                   for name in subset}

        def add_batch(name):
            def tmp(_, inp, out):
                wrapped[name].add_batch(inp[0].data, out.data)
            return tmp

        handles = [subset[name].register_forward_hook(add_batch(name)) for name in wrapped]
        ref._run_block(layer, inps, outs, kwargs, len(dataloader))
        for h in handles:
            h.remove()
        for name in subset:
            weight_mask = dsnot_layer_mask(name, subset[name], wrapped[name], args, prune_n,
                                           prune_m)
            subset[name].weight.data[weight_mask] = 0
            masks[f"{prefix}.{i}.{name}"] = weight_mask.cpu()
        ref._run_block(layer, inps, outs, kwargs, len(dataloader))
        inps, outs = outs, inps
    model.config.use_cache = use_cache
    return masks
