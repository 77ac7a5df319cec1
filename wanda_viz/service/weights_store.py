"""The process-wide store of updated weights (SparseGPT runs), bounded in bytes (no Gradio).

SparseGPT changes the weights it keeps, so its keep-mask alone cannot rebuild the pruned model:
its kept values (``KeptWeights.values``: 1-D per layer, ``(1 - sparsity)`` of the layer, CPU, in
the model dtype) must be kept somewhere. Per browser session that was a full weight copy per run;
here every session's values share one LRU bounded by ``WANDA_VIZ_MAX_UPDATED_WEIGHTS_MB``. A run
whose values were evicted is recomputed on demand (``RunRecord.apply``), so nothing is lost: only
time, logged. Keys are per run (random), so sessions never see each other's entries.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict

import torch

from ..pruning.state import values_nbytes
from .limits import get_limits

__all__ = ["UpdatedWeightsStore", "UPDATED_WEIGHTS", "values_nbytes"]

logger = logging.getLogger(__name__)


class UpdatedWeightsStore:
    """Run key -> {layer name: kept values}; least recently used entries leave first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
        self._nbytes = 0

    @staticmethod
    def capacity() -> int:
        """The host's bound in bytes (read at each call, like every limit)."""
        return int(get_limits().max_updated_weights_mb * 2**20)

    def put(self, key: str, values: dict[str, torch.Tensor]) -> bool:
        """Store ``values`` under ``key``, evicting the oldest entries to stay within the bound;
        False (nothing stored) when they alone exceed it."""
        size, capacity = values_nbytes(values), self.capacity()
        with self._lock:
            self._drop(key)
            if size > capacity:
                logger.info("updated weights of run %s (%.0f MB) exceed "
                            "WANDA_VIZ_MAX_UPDATED_WEIGHTS_MB: recomputed when needed",
                            key[:8], size / 2**20)
                return False
            while self._entries and self._nbytes + size > capacity:
                old, evicted = self._entries.popitem(last=False)
                self._nbytes -= values_nbytes(evicted)
                logger.info("evicted the updated weights of run %s (store bound %.0f MB)",
                            old[:8], capacity / 2**20)
            self._entries[key] = values
            self._nbytes += size
            return True

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        with self._lock:
            values = self._entries.get(key)
            if values is not None:
                self._entries.move_to_end(key)
            return values

    def discard(self, key: str) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: str) -> None:
        values = self._entries.pop(key, None)
        if values is not None:
            self._nbytes -= values_nbytes(values)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._nbytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._nbytes = 0


UPDATED_WEIGHTS = UpdatedWeightsStore()  # the one store, shared by every session of the process
