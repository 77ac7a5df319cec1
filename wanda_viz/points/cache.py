"""The one on-disk point cache: what identifies a model, a point's key, and rows that are checked.

A point is (model weights, change, metric, calibration if the change reads it, library version).
``point_key`` builds its SHA-256 in ONE place; ``PointCache`` stores one JSON file per point in
``cache_dir`` (default ``$WANDA_VIZ_SWEEP_CACHE`` or ``~/.cache/wanda_viz/sweeps``) and serves a
stored row only when it is well formed: every column the change and the metric promise is there
and every metric value is a finite number (or a dict of them). Anything else is logged and
recomputed, never shown.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path

import torch
from torch import nn

from ..files import file_sha256, write_json_atomic
from ..gguf import resolve_gguf

__all__ = ["CACHE_ENV", "default_cache_dir", "tensor_sha256", "model_fingerprint", "point_key",
           "PointCache"]

logger = logging.getLogger(__name__)

CACHE_ENV = "WANDA_VIZ_SWEEP_CACHE"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def default_cache_dir() -> Path:
    """``$WANDA_VIZ_SWEEP_CACHE`` or ``~/.cache/wanda_viz/sweeps``."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/wanda_viz/sweeps").expanduser()


def tensor_sha256(tensor: torch.Tensor) -> str:
    """Content hash of a tensor (dtype, shape and bytes)."""
    data = tensor.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{data.dtype}{tuple(data.shape)}".encode())
    digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def _cached_hub_commit(name: str, revision: str | None) -> str | None:
    """The commit of the locally cached snapshot of a hub model (its folder name), offline."""
    try:
        from huggingface_hub import snapshot_download
        path = snapshot_download(repo_id=name, revision=revision, local_files_only=True)
    except (OSError, ValueError, ImportError) as err:  # not cached / not a repo id
        logger.info("no cached snapshot of %s (%s)", name, type(err).__name__)
        return None
    return Path(path).name


def _gguf_path(name: str | None) -> Path | None:
    try:
        return resolve_gguf(name) if name is not None else None
    except FileNotFoundError:
        return None


def model_fingerprint(name_or_path: str | os.PathLike | None = None, *,
                      revision: str | None = None, model: nn.Module | None = None,
                      cache_dir: str | os.PathLike | None = None) -> dict:
    """What identifies a model's weights, for cache keys.

    GGUF: the file's SHA-256. Local folder: SHA-256 of config.json and every weight file
    (memoised in ``cache_dir``). Hub id: the commit of the locally cached snapshot (offline
    look-up), else ``revision``. Neither (a model built in memory): a hash of its parameters.

    Returns:
        {"model": display name, "fingerprint": string that changes iff the weights may change}.
    """
    name = str(name_or_path) if name_or_path is not None else None
    gguf = _gguf_path(name)
    if gguf is not None:  # GGUF (e.g. "smollm2-135m"): the quantized file fixes the weights
        return {"model": name, "fingerprint": f"gguf:{file_sha256(gguf)}"}
    folder = Path(name).expanduser() if name is not None else None
    if folder is not None and folder.is_dir():
        memo = cache_dir if cache_dir is not None else default_cache_dir()
        files = sorted(p for p in folder.iterdir()
                       if p.name == "config.json" or p.suffix in _WEIGHT_SUFFIXES)
        digest = hashlib.sha256()
        for file in files:
            digest.update(f"{file.name}:{file_sha256(file, memo)};".encode())
        return {"model": folder.name, "fingerprint": f"files:{digest.hexdigest()}"}
    if name is not None:
        commit = _cached_hub_commit(name, revision) or revision
        if commit is None:
            logger.warning("no revision known for %s: the point cache keys on the name only", name)
        return {"model": name, "fingerprint": f"hub:{name}@{commit or 'unknown'}"}
    if model is None:
        raise ValueError("give a model name/folder or the model itself")
    digest = hashlib.sha256()
    for param_name, param in model.state_dict().items():
        digest.update(f"{param_name}:{tensor_sha256(param)};".encode())
    return {"model": type(model).__name__, "fingerprint": f"weights:{digest.hexdigest()}"}


def point_key(*, change: dict, metric: dict, model: str, calibration: dict | None,
              version: str) -> str:
    """THE cache key: SHA-256 over the change, the metric (with the data it reads), the model
    fingerprint, the calibration (only when the change reads it) and the library version."""
    payload = {"change": change, "metric": metric, "model": model, "calibration": calibration,
               "version": version}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _finite(value) -> bool:
    """A finite real number, or a non-empty dict whose values are all finite (nested)."""
    if isinstance(value, dict):
        return bool(value) and all(_finite(v) for v in value.values())
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


class PointCache:
    """One JSON file per point: ``{"row": {...}, "key_parts": {...}}`` named ``<key>.json``."""

    def __init__(self, cache_dir: str | os.PathLike | None):
        self.folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def read(self, key: str, columns: tuple[str, ...], metric_columns: tuple[str, ...]
             ) -> dict | None:
        """The stored row of ``key`` when it is well formed (see the module docstring)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            row = json.loads(path.read_text(encoding="utf-8"))["row"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            logger.warning("recomputing point %s: unreadable cache file (%s)", path.name, err)
            return None
        problem = self.problem(row, columns, metric_columns)
        if problem:
            logger.warning("recomputing point %s: cached row %s", path.name, problem)
            return None
        return row

    @staticmethod
    def problem(row, columns: tuple[str, ...], metric_columns: tuple[str, ...]) -> str | None:
        """Why ``row`` may not be served (None: it may)."""
        if not isinstance(row, dict):
            return "is not a JSON object"
        missing = [c for c in (*columns, *metric_columns) if c not in row]
        if missing:
            return f"lacks {', '.join(missing)}"
        bad = [c for c in metric_columns if not _finite(row[c])]
        return f"has a non-finite {', '.join(bad)}" if bad else None

    def write(self, key: str, row: dict, key_parts: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path(key), {"row": row, "key_parts": key_parts})
