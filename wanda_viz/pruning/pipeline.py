"""The one pruning pipeline: sequential block-by-block calibration -> scores -> keep-masks -> update.

As in the Wanda and SparseGPT reference code: capture the inputs of block 0; for block i, record
the input statistics of all its prunable layers with hooks while running every calibration window
through it, prune all of them, then run the block again so that its PRUNED outputs become the
inputs of block i+1 (statistics of block i see the pruning of blocks < i). One loop serves every
method, structure and architecture.
"""
from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from ..calibration import CapturedInputs, capture_layer_inputs, record_inputs, run_layer
from ..config import PruneConfig
from ..models import (find_decoder_layers, find_prunable_layers, model_context_length,
                      model_device, resolve_device, weight_matrix)
from ..result import PruneResult
from ..stats import CalibrationStats
from .masks import achieved_sparsity, apply_keep_mask, nm_keep_mask, topk_keep_mask, \
    wanda_variant_keep_mask
from .owl import outlier_ratio, owl_block_sparsities
from .refine import refine_shared_input_layers
from .registry import STATS_HESSIAN, get_method
from .scores import wanda_scores

__all__ = ["BlockStep", "calibrate_blocks", "compute_keep_mask", "prune_layer",
           "prune_shared_input_layers", "prune_model", "compute_owl_sparsities"]

logger = logging.getLogger(__name__)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class BlockStep:
    """One decoder block during sequential calibration (valid until the next step).

    After changing the block's weights call ``recompute_outputs()``: it runs the block again on
    its inputs so that ``outputs``, the next block's inputs, see the change (else they stay the
    outputs of the unchanged block). Layers that read the same input tensor share one object in
    ``stats`` (one statistic per distinct input).
    """

    index: int
    name: str                                  # qualified name, e.g. "model.layers.3"
    block: nn.Module
    layers: dict[str, nn.Module]               # prunable layers by qualified name
    stats: dict[str, CalibrationStats]
    inputs: torch.Tensor                       # (n_samples, seq_len, hidden_size)
    outputs: torch.Tensor                      # block outputs (before any change this step;
                                               # with dense_outputs=False: none before recompute)
    last: bool = False                         # the last block: its outputs feed no other
    _recompute: Callable[[], None] = field(default=lambda: None, repr=False)

    def recompute_outputs(self) -> None:
        """Run the block again on ``inputs``, writing ``outputs`` (counted in ``forward_s``)."""
        self._recompute()


def _timed_run(block: nn.Module, hidden: torch.Tensor, captured: CapturedInputs, out: torch.Tensor,
               batch_size: int, device: torch.device, timings: dict,
               stop_at: nn.Module | None = None) -> None:
    start = time.perf_counter()
    run_layer(block, hidden, captured.kwargs, captured_batch=captured.batch,
              batch_size=batch_size, out=out, stop_at=stop_at)
    _sync(device)
    timings["forward_s"] = timings.get("forward_s", 0.0) + time.perf_counter() - start


def calibrate_blocks(model: nn.Module, calib_ids: torch.Tensor, *, batch_size: int = 8,
                     hessian: bool = False, offload: bool = False,
                     exec_device: str | torch.device = "auto", share_inputs: bool = True,
                     dense_outputs: bool = True, timings: dict | None = None,
                     desc: str = "blocks", moments: bool = False) -> Iterator[BlockStep]:
    """Yield every decoder block with the statistics of its layers' inputs, in order.

    Args:
        calib_ids: (n_samples, seq_len) token ids.
        hessian: also accumulate SparseGPT's Hessian for every distinct layer input.
        moments: also accumulate DSnoT's input moments (``stats.InputMomentStats``).
        offload: move each block to ``exec_device`` only while it is processed.
        share_inputs: one stats object per distinct input tensor (see ``record_inputs``).
        dense_outputs: False when the caller runs ``recompute_outputs()`` on every step but the
            last (pruning does): the statistics pass may then end at the input of the block's
            last prunable layer (LLaMA: down_proj), skipping that layer and what follows, which
            only computed outputs the recompute overwrites. See ``_StatsPassEnd``.
        timings: dict to which "capture_s" and "forward_s" seconds are added.
    """
    timings = timings if timings is not None else defaultdict(float)
    prefix, blocks = find_decoder_layers(model)
    device = resolve_device(exec_device) if offload else model_device(model)
    start = time.perf_counter()
    captured = capture_layer_inputs(model, blocks[0], calib_ids, batch_size=batch_size,
                                    store_device=device)
    _sync(device)
    timings["capture_s"] = timings.get("capture_s", 0.0) + time.perf_counter() - start
    hidden, outputs = captured.hidden, torch.empty_like(captured.hidden)
    pass_end = None if dense_outputs else _StatsPassEnd(-(-hidden.shape[0] // batch_size))
    for index, block in enumerate(tqdm(blocks, desc=desc, leave=False)):
        home = next(block.parameters()).device
        if offload:
            block.to(device)
        name = f"{prefix}.{index}"
        layers = find_prunable_layers(block, name)
        make = (lambda _n, layer: CalibrationStats(weight_matrix(layer).shape[1],
                                                   layer.weight.device, hessian=hessian,
                                                   seq_len=hidden.shape[1], moments=moments))
        run = functools.partial(_timed_run, block, hidden, captured, outputs, batch_size, device,
                                timings)
        stop_at = pass_end.layer(block, name, layers) if pass_end else None
        call_log: list[str] = []
        with record_inputs(layers, make, share_inputs=share_inputs, call_log=call_log) as stats:
            run(stop_at=stop_at)
        stopped = stop_at is not None
        if pass_end and not pass_end.check(block, name, layers, call_log, stopped=stopped):
            with record_inputs(layers, make, share_inputs=share_inputs) as stats:  # fresh stats
                run()
        yield BlockStep(index, name, block, layers, stats, hidden, outputs,
                        index == len(blocks) - 1, run)
        if offload:
            block.to(home)
        hidden, outputs = outputs, hidden


class _StatsPassEnd:
    """Where a statistics-only pass through a block may end: the last prunable layer to run.

    Learned from the first block (its pass runs whole): when every prunable layer ran exactly
    once per batch, the one called last ends the passes of later blocks of the same class with
    the same layer names, right after its input is recorded. Each shortened pass is checked to
    have called every layer once per batch; if one did not (a data-dependent order, e.g. routed
    experts), the block's pass is run again whole with fresh statistics and no later pass is
    shortened, so no layer is ever left with partial statistics.
    """

    def __init__(self, n_batches: int):
        self.n_batches = n_batches
        self.learned: tuple[type, frozenset[str], str] | None = None  # class, layer names, last
        self.disabled = False  # a shortened pass missed a layer: run every later pass whole

    @staticmethod
    def _relative(name: str, layers: dict[str, nn.Module]) -> frozenset[str]:
        return frozenset(layer_name[len(name) + 1:] for layer_name in layers)

    def layer(self, block: nn.Module, name: str, layers: dict[str, nn.Module]) -> nn.Module | None:
        """The layer at which this block's statistics pass ends, or None (run it whole)."""
        if self.learned is None:
            return None
        block_class, relative, last = self.learned
        if type(block) is not block_class or self._relative(name, layers) != relative:
            return None
        return layers[f"{name}.{last}"]

    def check(self, block: nn.Module, name: str, layers: dict[str, nn.Module],
              call_log: list[str], stopped: bool) -> bool:
        """After a pass: learn from a whole one. False if a shortened one missed a layer: its
        statistics are incomplete (run the pass again whole); passes are no longer shortened."""
        once = (len(call_log) == len(layers) * self.n_batches
                and all(call_log.count(layer) == self.n_batches for layer in layers))
        if stopped and not once:
            missing = sorted(layer for layer in layers if call_log.count(layer) != self.n_batches)
            logger.warning("%s: %s did not run once per batch before the statistics pass ended "
                           "at the block's last prunable layer (a data-dependent order); running "
                           "its pass again whole, and every later one", name, ", ".join(missing))
            self.learned, self.disabled = None, True
            return False
        if not stopped and once and self.learned is None and layers and not self.disabled:
            self.learned = (type(block), self._relative(name, layers),
                            call_log[-1][len(name) + 1:])
        return True


def compute_keep_mask(scores: torch.Tensor, sparsity: float, config: PruneConfig) -> torch.Tensor:
    """Keep-mask from magnitude/Wanda scores under the config's structure and comparison group."""
    if config.nm is not None:
        return nm_keep_mask(scores, *config.nm)
    if config.wanda_variant:
        return wanda_variant_keep_mask(scores, sparsity)[0]
    layer_mask = get_method(config.method).layer_mask  # a method's own per-layer rule (RIA)
    if config.comparison_group == "layer" and layer_mask is not None:
        return layer_mask(scores, sparsity)
    return topk_keep_mask(scores, sparsity, config.comparison_group)


@torch.no_grad()
def prune_layer(layer: nn.Module, stats: CalibrationStats | None, sparsity: float,
                config: PruneConfig) -> tuple[torch.Tensor, float | None]:
    """Prune one layer in place; returns (keep_mask (out, in) bool, SparseGPT loss or None)."""
    if config.refine is not None:
        raise ValueError("a refinement (DSnoT) needs the layer's name and block: use prune_model")
    weight = weight_matrix(layer)  # (out, in) view of the parameter
    method = get_method(config.method)
    if method.prune is not None:  # the method updates the kept weights too (SparseGPT)
        ((new_weight, keep_mask, loss),) = method.prune([weight], stats, sparsity, config)
        weight.copy_(new_weight.to(weight.dtype))
        return keep_mask, loss
    scores = method.scores(weight, stats, config)
    keep_mask = compute_keep_mask(scores, sparsity, config)
    apply_keep_mask(layer, keep_mask)
    return keep_mask, None


def compute_owl_sparsities(model: nn.Module, calib_ids: torch.Tensor, config: PruneConfig,
                           timings: dict | None = None) -> list[float]:
    """OWL per-block sparsities from a dense sequential pass (Wanda scores' outlier ratios)."""
    ratios = []
    for step in calibrate_blocks(model, calib_ids, batch_size=config.batch_size,
                                 offload=config.offload, exec_device=config.exec_device,
                                 timings=timings, desc="OWL outlier ratios"):
        scores = [wanda_scores(weight_matrix(layer), step.stats[name].input_sq_norm)
                  for name, layer in step.layers.items()]
        ratios.append(outlier_ratio(scores, config.owl_m))
    sparsities = owl_block_sparsities(ratios, config.sparsity, config.owl_lambda)
    logger.info("OWL outlier ratios %s -> block sparsities %s", ratios, sparsities)
    return sparsities


def _check_calib_ids(model: nn.Module, calib_ids: torch.Tensor | None) -> None:
    if calib_ids is None:
        raise ValueError("this method needs calibration data: pass calib_ids (n_samples, seq_len)")
    if calib_ids.dim() != 2 or calib_ids.dtype not in (torch.long, torch.int):
        raise ValueError(f"calib_ids must be integer token ids (n_samples, seq_len), got "
                         f"{tuple(calib_ids.shape)} {calib_ids.dtype}")
    context = model_context_length(model)
    if context is not None and calib_ids.shape[1] > context:
        raise ValueError(f"calibration seq_len {calib_ids.shape[1]} is longer than the model "
                         f"allows ({context} tokens)")


def _blocks_without_calibration(model: nn.Module) -> Iterator[BlockStep]:
    prefix, blocks = find_decoder_layers(model)
    for index, block in enumerate(blocks):
        name = f"{prefix}.{index}"
        yield BlockStep(index, name, block, find_prunable_layers(block, name), {},
                        torch.empty(0), torch.empty(0))


def prune_model(model: nn.Module, calib_ids: torch.Tensor | None = None,
                config: PruneConfig | None = None, *, calibration: dict | None = None,
                model_name: str | None = None) -> PruneResult:
    """Prune every prunable layer of every decoder block of ``model`` in place.

    Args:
        model: a causal LM (see ``load_model``). Keep a ``WeightBackup`` to go back to dense.
        calib_ids: (n_samples, seq_len) token ids; not needed for plain magnitude pruning.
        config: method, sparsity, structure ... (default: Wanda, 50%, unstructured).
        calibration: description of the calibration data, stored in the result.
    Returns:
        PruneResult with achieved sparsity per layer, keep-masks, input norms and timings.
    """
    config = config or PruneConfig()
    method = get_method(config.method)
    if config.needs_calibration:
        _check_calib_ids(model, calib_ids)
    timings: dict[str, float] = defaultdict(float)
    start = time.perf_counter()
    result = PruneResult(config, calibration, model_name,
                         keep_masks={} if config.store_masks else None)
    block_targets = compute_owl_sparsities(model, calib_ids, config, timings) if config.owl else None
    if block_targets is not None:
        timings["owl_s"] = time.perf_counter() - start
    # dense_outputs=False: every step but the last recomputes its outputs after pruning below.
    steps = (calibrate_blocks(model, calib_ids, batch_size=config.batch_size,
                              hessian=method.stats == STATS_HESSIAN, offload=config.offload,
                              exec_device=config.exec_device, dense_outputs=False,
                              timings=timings, desc=f"pruning ({config.label()})",
                              moments=config.refine is not None)
             if method.needs_calibration or config.refine else _blocks_without_calibration(model))
    for step in steps:
        sparsity = block_targets[step.index] if block_targets else config.sparsity
        result.block_sparsity.append(sparsity)
        _prune_block(step, sparsity, config, result, timings)
        if not step.last:  # the last block's outputs feed nothing
            step.recompute_outputs()
    timings["total_s"] = time.perf_counter() - start
    result.timings = dict(timings)
    return result


def _input_groups(step: BlockStep) -> list[list[str]]:
    """The block's layer names grouped by shared stats (same input), in layer order."""
    groups: dict[object, list[str]] = {}
    for name in step.layers:
        stats = step.stats.get(name)
        groups.setdefault(id(stats) if stats is not None else name, []).append(name)
    return list(groups.values())


@torch.no_grad()
def prune_shared_input_layers(layers: dict[str, nn.Module], stats: CalibrationStats,
                              sparsity: float, config: PruneConfig
                              ) -> dict[str, tuple[torch.Tensor, float | None]]:
    """Prune layers that read the same input (one stats object) in place; {name: (keep, loss)}.

    A method that updates weights (SparseGPT) prunes them in ONE call of its registry ``prune``
    (one OBS pass over their stacked rows), bit for bit what ``prune_layer`` gives each layer
    alone; the others score, mask and zero layer by layer.
    """
    method = get_method(config.method)
    if method.prune is None:
        return {name: prune_layer(layer, stats, sparsity, config) for name, layer in layers.items()}
    weights = [weight_matrix(layer) for layer in layers.values()]  # (out, in) views
    pruned = method.prune(weights, stats, sparsity, config)
    for weight, (new_weight, _, _) in zip(weights, pruned):
        weight.copy_(new_weight.to(weight.dtype))
    return {name: (keep_mask, loss) for name, (_, keep_mask, loss) in zip(layers, pruned)}


def _prune_block(step: BlockStep, sparsity: float, config: PruneConfig, result: PruneResult,
                 timings: dict) -> None:
    done: dict[str, tuple] = {}  # name -> what the result records; filled in layer order below
    for group in _input_groups(step):
        layers = {name: step.layers[name] for name in group}
        stats = step.stats.get(group[0])
        device = layers[group[0]].weight.device
        start = time.perf_counter()
        pruned = (refine_shared_input_layers(layers, stats, sparsity, config, step.name)
                  if config.refine else prune_shared_input_layers(layers, stats, sparsity, config))
        _sync(device)
        timings["prune_s"] += time.perf_counter() - start
        norm = stats.input_sq_norm.cpu() if stats is not None else None
        for name in group:
            keep_mask, loss = pruned[name]
            done[name] = (tuple(keep_mask.shape), achieved_sparsity(keep_mask), loss, norm,
                          keep_mask.cpu() if result.keep_masks is not None else None)
            step.stats.pop(name, None)  # free the Hessian before the next group
    for name in step.layers:
        shape, achieved, loss, norm, keep_mask = done[name]
        result.layer_shapes[name] = shape
        result.target_sparsity[name] = sparsity
        result.layer_sparsity[name] = achieved
        if norm is not None:
            result.input_sq_norm[name] = norm
        if loss is not None:
            result.losses[name] = loss
        if keep_mask is not None:
            result.keep_masks[name] = keep_mask
