"""The sequential calibration protocol: every decoder block in order, with its layers' statistics.

As in the Wanda and SparseGPT reference code (docs/PROTOCOLS.md): capture the inputs of block 0
(and every keyword argument it receives); for block i, record the input statistics of all its
prunable layers with hooks while every calibration window runs through it; the caller may change
the block (pruning); then the block runs again so that its outputs, the inputs of block i+1, see
the change. Pruning uses it (``pruning.pipeline``), and so does every dense pass over all blocks
(the activation report, OWL's outlier ratios): the protocol is not pruning-specific.

The contract, enforced: a ``BlockStep`` is valid until the next one (its buffers are reused), and
its ``outputs`` can be read only when they are current: with ``dense_outputs=True`` they are the
block's outputs as it was when yielded; with ``dense_outputs=False`` (pruning) only after
``recompute_outputs()``, which must then run on every step but the last before the next is
asked for. Reading stale outputs raises instead of returning another block's numbers.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from .block_pass import BlockRunner, StatsPassEnd, sync_device
from .calibration import capture_layer_inputs, record_inputs
from .cancel import CancelToken, check_cancelled
from .layers import find_decoder_layers, find_prunable_layers, model_device, resolve_device, \
    weight_matrix
from .stats import CalibrationStats

__all__ = ["BlockStep", "StaleOutputsError", "calibrate_blocks"]


class StaleOutputsError(RuntimeError):
    """A ``BlockStep``'s outputs were read when they are not the block's current outputs."""


@dataclass(eq=False)
class BlockStep:
    """One decoder block during sequential calibration (valid until the next step).

    Layers that read the same input tensor share one object in ``stats`` (one statistic per
    distinct input). ``inputs`` (n_samples, seq_len, hidden_size) are the block's inputs;
    ``outputs`` its outputs (see the module docstring for when they may be read).
    """

    index: int
    name: str                                  # qualified name, e.g. "model.layers.3"
    block: nn.Module
    layers: dict[str, nn.Module]               # prunable layers by qualified name
    stats: dict[str, CalibrationStats]
    last: bool = False                         # the last block: its outputs feed no other
    _inputs: torch.Tensor | None = field(default=None, repr=False)
    _outputs: torch.Tensor | None = field(default=None, repr=False)
    _runner: BlockRunner | None = field(default=None, repr=False)
    _current: bool = field(default=False, repr=False)   # _outputs are the block's outputs
    _over: bool = field(default=False, repr=False)      # the next step reuses the buffers

    @property
    def inputs(self) -> torch.Tensor:
        self._check_open("inputs")
        return self._inputs

    @property
    def outputs(self) -> torch.Tensor:
        self._check_open("outputs")
        if not self._current:
            raise StaleOutputsError(
                f"{self.name}: outputs are not computed (calibrate_blocks(dense_outputs=False)); "
                "call recompute_outputs() after changing the block")
        return self._outputs

    def recompute_outputs(self) -> None:
        """Run the block again on ``inputs``, writing ``outputs`` (counted in ``forward_s``)."""
        self._check_open("recompute_outputs")
        self._runner.run(self.block, self._inputs, self._outputs)
        self._current = True

    def _check_open(self, what: str) -> None:
        if self._over:
            raise StaleOutputsError(f"{self.name}: {what} read after the next block's step began "
                                    "(its buffers are reused)")


def calibrate_blocks(model: nn.Module, calib_ids: torch.Tensor, *,
                     statistics: Collection[str] = (), batch_size: int = 8,
                     offload: bool = False, exec_device: str | torch.device = "auto",
                     share_inputs: bool = True, dense_outputs: bool = True,
                     timings: dict | None = None, cancel: CancelToken | None = None,
                     desc: str = "blocks") -> Iterator[BlockStep]:
    """Yield every decoder block with the statistics of its layers' inputs, in order.

    Args:
        calib_ids: (n_samples, seq_len) token ids.
        statistics: statistics to collect besides the input norm (``stats.STATISTICS`` names,
            e.g. ("hessian",) for SparseGPT).
        offload: move each block to ``exec_device`` only while it is processed.
        share_inputs: one stats object per distinct input tensor (see ``record_inputs``).
        dense_outputs: False when the caller runs ``recompute_outputs()`` on every step but the
            last (pruning does): the statistics pass may then end at the input of the block's
            last prunable layer (``block_pass.StatsPassEnd``).
        timings: dict to which "capture_s" and "forward_s" seconds are added.
        cancel: checked before every block; ``Cancelled`` ends the iteration (no hook is left).
    Raises:
        StaleOutputsError: with ``dense_outputs=False``, the next step was asked for before
            ``recompute_outputs()`` ran on this one.
    """
    timings = timings if timings is not None else defaultdict(float)
    prefix, blocks = find_decoder_layers(model)
    device = resolve_device(exec_device) if offload else model_device(model)
    start = time.perf_counter()
    captured = capture_layer_inputs(model, blocks[0], calib_ids, batch_size=batch_size,
                                    store_device=device)
    sync_device(device)
    timings["capture_s"] = timings.get("capture_s", 0.0) + time.perf_counter() - start
    runner = BlockRunner(captured, batch_size=batch_size, device=device, offload=offload,
                         timings=timings)
    hidden, outputs = captured.hidden, torch.empty_like(captured.hidden)
    pass_end = None if dense_outputs else StatsPassEnd(-(-hidden.shape[0] // batch_size))
    for index, block in enumerate(tqdm(blocks, desc=desc, leave=False)):
        check_cancelled(cancel)
        name = f"{prefix}.{index}"
        with runner.placed(block):
            layers = find_prunable_layers(block, name)
            stats = _statistics_pass(runner, block, name, layers, hidden, outputs, statistics,
                                     share_inputs, pass_end)
            step = BlockStep(index, name, block, layers, stats, index == len(blocks) - 1,
                             hidden, outputs, runner, _current=dense_outputs)
            yield step
            step._over = True
            if not step._current and not step.last:
                raise StaleOutputsError(f"{name}: recompute_outputs() was not called before the "
                                        "next block (calibrate_blocks(dense_outputs=False))")
        hidden, outputs = outputs, hidden


def _statistics_pass(runner: BlockRunner, block: nn.Module, name: str,
                     layers: dict[str, nn.Module], hidden: torch.Tensor, outputs: torch.Tensor,
                     statistics: Collection[str], share_inputs: bool,
                     pass_end: StatsPassEnd | None) -> dict[str, CalibrationStats]:
    """Run the block over every window with statistics hooks on its layers; their statistics.

    With ``pass_end``, the pass may end at the block's last prunable layer; a shortened pass that
    missed a layer runs again whole with fresh statistics.
    """
    def make(_name: str, layer: nn.Module) -> CalibrationStats:
        return CalibrationStats(weight_matrix(layer).shape[1], layer.weight.device,
                                statistics=statistics, seq_len=hidden.shape[1])

    stop_at = pass_end.layer(block, name, layers) if pass_end else None
    call_log: list[str] = []
    with record_inputs(layers, make, share_inputs=share_inputs, call_log=call_log) as stats:
        runner.run(block, hidden, outputs, stop_at=stop_at)
    stopped = stop_at is not None
    if pass_end and not pass_end.check(block, name, layers, call_log, stopped=stopped):
        with record_inputs(layers, make, share_inputs=share_inputs) as stats:  # fresh stats
            runner.run(block, hidden, outputs)
    return stats
