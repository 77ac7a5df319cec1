"""Bookkeeping of one block's passes in the sequential protocol: timing, offload, shortened passes.

``BlockRunner`` runs a block over all calibration windows (timed into ``forward_s``, synchronised
on CUDA) and, when offloading, keeps the block on the execution device only while it is used.
``StatsPassEnd`` decides where a statistics-only pass may end: its outputs are about to be
recomputed anyway (pruning), so the pass can stop at the input of the block's last prunable layer.
The protocol loop itself is ``sequential.calibrate_blocks``.
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import torch
from torch import nn

from .calibration import CapturedInputs, run_layer

__all__ = ["sync_device", "BlockRunner", "StatsPassEnd"]

logger = logging.getLogger(__name__)


def sync_device(device: torch.device) -> None:
    """Wait for queued CUDA work, so that wall-clock timings measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class BlockRunner:
    """Runs blocks on the captured calibration inputs, timing every pass into ``timings``."""

    def __init__(self, captured: CapturedInputs, *, batch_size: int, device: torch.device,
                 offload: bool, timings: dict):
        self.captured, self.batch_size, self.device = captured, batch_size, device
        self.offload, self.timings = offload, timings

    @contextlib.contextmanager
    def placed(self, block: nn.Module) -> Iterator[None]:
        """The block on the execution device inside the ``with`` (offload), home again after."""
        home = next(block.parameters()).device
        if self.offload:
            block.to(self.device)
        try:
            yield
        finally:
            if self.offload:
                block.to(home)

    def run(self, block: nn.Module, hidden: torch.Tensor, out: torch.Tensor,
            stop_at: nn.Module | None = None) -> None:
        """``out`` <- block(hidden) for every window (``stop_at``: a statistics-only pass)."""
        start = time.perf_counter()
        run_layer(block, hidden, self.captured.kwargs, captured_batch=self.captured.batch,
                  batch_size=self.batch_size, out=out, stop_at=stop_at)
        sync_device(self.device)
        self.timings["forward_s"] = self.timings.get("forward_s", 0.0) + time.perf_counter() - start


class StatsPassEnd:
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
