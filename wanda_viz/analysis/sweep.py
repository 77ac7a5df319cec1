"""Sweeps: methods x sparsities x structures with the dense baseline, cached on disk per point.

Each point prunes the dense model in place (``prune_model``), evaluates perplexity by the reference
protocol (docs/PROTOCOLS.md) and restores the dense weights from one ``WeightBackup``. The
calibration windows, evaluation ids and the loaded model are shared by all points.
NOTE: per-method calibration statistics cannot be shared across sparsities: the sequential
protocol (Wanda/SparseGPT reference code) computes the statistics of block i on the outputs of
the already PRUNED blocks < i, so they depend on the sparsity. Only magnitude needs none.

Cache: one JSON file per point in ``cache_dir`` (default ``$WANDA_VIZ_SWEEP_CACHE`` or
``~/.cache/wanda_viz/sweeps``), named by the SHA-256 of everything that determines the result:
model fingerprint (hub revision, or content hash of the local config + weight files), pruning
config, calibration description + hash of the calibration token ids, evaluation protocol + hash
of the evaluation ids, and the library version. Repeated or extended sweeps compute only new points.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..captions import calibration_caption
from ..config import PruneConfig, parse_structure
from ..evaluate import count_eval_windows, eval_protocol, perplexity
from ..models import WeightBackup, resolve_seq_len
from ..files import write_json_atomic
from ..gguf import file_sha256 as gguf_sha256
from ..gguf import float_copy_fingerprint, resolve_gguf
from ..pruning import prune_model
from ..pruning.registry import METHOD_NAMES, get_method

__all__ = [
    "CACHE_ENV", "SWEEP_COLUMNS", "default_cache_dir", "file_sha256", "tensor_sha256",
    "model_fingerprint", "sweep_points", "point_key", "cache_context", "run_sweep",
]

logger = logging.getLogger(__name__)

CACHE_ENV = "WANDA_VIZ_SWEEP_CACHE"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_RESULT_FREE = ("batch_size", "offload", "exec_device", "store_masks")  # do not change results
SWEEP_COLUMNS = ["method", "structure", "sparsity", "group", "label", "perplexity",
                 "achieved_sparsity", "prune_s", "forward_s", "total_s", "eval_s", "model",
                 "calibration", "eval_protocol", "version", "key", "cached"]


def default_cache_dir() -> Path:
    """``$WANDA_VIZ_SWEEP_CACHE`` or ``~/.cache/wanda_viz/sweeps``."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/wanda_viz/sweeps").expanduser()


def _library_version() -> str:
    from .. import __version__  # at call time: the package __init__ has finished by then
    return __version__


def tensor_sha256(tensor: torch.Tensor) -> str:
    """Content hash of a tensor (dtype, shape and bytes)."""
    data = tensor.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{data.dtype}{tuple(data.shape)}".encode())
    digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> str:
    """SHA-256 of a file's content, memoised in ``cache_dir/file_hashes.json`` by path+mtime+size."""
    file = Path(path).resolve()
    info = file.stat()
    memo_key = f"{file}|{info.st_mtime_ns}|{info.st_size}"
    memo_path = Path(cache_dir or default_cache_dir()) / "file_hashes.json"
    memo = _read_json_index(memo_path)
    if memo_key in memo:
        return memo[memo_key]
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    memo[memo_key] = digest.hexdigest()
    memo_path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(memo_path, memo)
    return memo[memo_key]


def _read_json_index(path: Path) -> dict:
    """A JSON dict on disk, or {} when it is absent or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        logger.warning("rebuilding unreadable cache index %s (%s)", path, err)
        return {}
    if not isinstance(data, dict):
        logger.warning("rebuilding cache index %s (not a JSON object)", path)
        return {}
    return data


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

    GGUF file: SHA-256 of the file and the content hash of its verified float copy (the weights
    actually loaded). Local folder: SHA-256 of config.json and every weight file (memoised by
    path+mtime+size).
    Hub id: the commit of the locally cached snapshot (offline look-up), else ``revision``.
    Neither (a model built in memory): a hash of its parameters.

    Returns:
        {"model": display name, "fingerprint": string that changes iff the weights may change}.
    """
    name = str(name_or_path) if name_or_path is not None else None
    gguf = _gguf_path(name)
    if gguf is not None:  # GGUF (e.g. "smollm2-135m"): the file and the verified float copy
        return {"model": name, "fingerprint": f"gguf:{gguf_sha256(gguf)}:float:"  # evaluated
                                              f"{float_copy_fingerprint(gguf)}"}
    folder = Path(name).expanduser() if name is not None else None
    if folder is not None and folder.is_dir():
        files = sorted(p for p in folder.iterdir()
                       if p.name == "config.json" or p.suffix in _WEIGHT_SUFFIXES)
        digest = hashlib.sha256()
        for file in files:
            digest.update(f"{file.name}:{file_sha256(file, cache_dir)};".encode())
        return {"model": folder.name, "fingerprint": f"files:{digest.hexdigest()}"}
    if name is not None:
        commit = _cached_hub_commit(name, revision) or revision
        if commit is None:
            logger.warning("no revision known for %s: the sweep cache keys on the name only", name)
        return {"model": name, "fingerprint": f"hub:{name}@{commit or 'unknown'}"}
    if model is None:
        raise ValueError("give a model name/folder or the model itself")
    digest = hashlib.sha256()
    for param_name, param in model.state_dict().items():
        digest.update(f"{param_name}:{tensor_sha256(param)};".encode())
    return {"model": type(model).__name__, "fingerprint": f"weights:{digest.hexdigest()}"}


def sweep_points(methods: Sequence[str], sparsities: Sequence[float],
                 structures: Sequence[str] = ("unstructured",), *, group: str | None = None,
                 include_dense: bool = True) -> list[PruneConfig]:
    """The configs of a sweep: N:M structures get their one sparsity N/M.

    The dense baseline comes first, as ``None`` in place of a config. SparseGPT ignores ``group``
    (it always compares per 128-column block).
    """
    points: list = [None] if include_dense else []
    for structure in structures:
        nm = parse_structure(structure)
        levels = [nm[0] / nm[1]] if nm else list(dict.fromkeys(sparsities))  # unique, ordered
        for sparsity in levels:
            for method in methods:
                chosen = None if get_method(method).group_note else group
                points.append(PruneConfig(method=method, sparsity=float(sparsity),
                                          structure=structure if nm else "unstructured",
                                          group=chosen))
    return points


def point_key(config: PruneConfig | None, context: dict) -> str:
    """SHA-256 over the config (minus result-free fields) and the sweep context."""
    if config is None:
        settings = {"method": "dense"}
    else:
        settings = {k: v for k, v in config.to_dict().items() if k not in _RESULT_FREE}
    needs_calib = config is not None and config.needs_calibration
    payload = {"config": settings, "model": context["model"]["fingerprint"],
               "calibration": context["calibration"] if needs_calib else None,
               "evaluation": context["evaluation"], "version": context["version"]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _compute_point(model: nn.Module, config: PruneConfig | None, calib_ids: torch.Tensor | None,
                   eval_ids: torch.Tensor, *, seq_len: int, max_windows: int | None,
                   batch_size: int) -> dict:
    """Prune (unless dense) and evaluate one point; the caller restores the dense weights."""
    row = {"achieved_sparsity": 0.0, "prune_s": 0.0, "forward_s": 0.0, "total_s": 0.0}
    if config is not None:
        config = PruneConfig(**{**config.to_dict(), "batch_size": batch_size,
                                "store_masks": False})
        result = prune_model(model, calib_ids if config.needs_calibration else None, config)
        timings = result.timings
        row.update(achieved_sparsity=result.overall_sparsity,
                   prune_s=timings.get("prune_s", 0.0),
                   forward_s=timings.get("forward_s", 0.0) + timings.get("capture_s", 0.0),
                   total_s=timings.get("total_s", 0.0))
    start = time.perf_counter()
    row["perplexity"] = perplexity(model, eval_ids, seq_len, max_windows=max_windows,
                                   show_progress=False)
    row["eval_s"] = time.perf_counter() - start
    return row


def _read_cached_row(path: Path) -> dict | None:
    """The stored row of a point, or None when absent or unreadable (then it is recomputed)."""
    if not path.is_file():
        return None
    try:
        return {**json.loads(path.read_text(encoding="utf-8"))["row"], "cached": True}
    except (OSError, ValueError, KeyError, TypeError) as err:
        logger.warning("ignoring unreadable sweep cache file %s (%s)", path, err)
        return None


def _point_labels(config: PruneConfig | None) -> dict:
    if config is None:
        return {"method": "dense", "structure": "dense", "sparsity": 0.0, "group": "-",
                "label": "dense"}
    group = "N:M" if config.nm else config.comparison_group  # N:M compares within M inputs
    return {"method": config.method, "structure": config.structure,
            "sparsity": config.sparsity, "group": group,
            "label": config.label()}


def cache_context(fingerprint: dict, calib_ids: torch.Tensor | None, eval_ids: torch.Tensor, *,
                  calibration: dict | None, eval_label: str, seq_len: int,
                  max_windows: int | None) -> tuple[dict, dict]:
    """(what keys the cache, protocol columns shared by every row); the sweep and the why
    analyses key their on-disk points with it."""
    if count_eval_windows(eval_ids.numel(), seq_len, max_windows) == 0:  # fail before pruning anything
        raise ValueError(f"the evaluation text has {eval_ids.numel()} tokens, fewer than one "
                         f"window of seq_len = {seq_len}")
    context = {
        "model": fingerprint, "version": _library_version(),
        "calibration": {**(calibration or {}), "ids_sha256": tensor_sha256(calib_ids)
                        if calib_ids is not None else None},
        "evaluation": {"label": eval_label, "seq_len": seq_len, "max_windows": max_windows,
                       "ids_sha256": tensor_sha256(eval_ids)},
    }
    shared = {"model": fingerprint.get("model"), "version": context["version"],
              "calibration": calibration_caption(calibration, calib_ids),
              "eval_protocol": eval_protocol(eval_ids, eval_label, seq_len, max_windows)}
    return context, shared


@torch.no_grad()
def run_sweep(model: nn.Module, calib_ids: torch.Tensor | None, eval_ids: torch.Tensor, *,
              fingerprint: dict, methods: Sequence[str] = METHOD_NAMES,
              sparsities: Sequence[float] = (0.5,), structures: Sequence[str] = ("unstructured",),
              group: str | None = None, include_dense: bool = True,
              calibration: dict | None = None, eval_label: str = "evaluation text",
              seq_len: int | None = None, max_windows: int | None = None,
              cache_dir: str | os.PathLike | None = None, batch_size: int = 8,
              callback: Callable[[int, int, dict], None] | None = None,
              show_progress: bool = True, dense: WeightBackup | None = None,
              model_for_point: Callable[[], AbstractContextManager[nn.Module]] | None = None
              ) -> pd.DataFrame:
    """Perplexity and sparsity of every sweep point; cached points are read, not recomputed.

    Args:
        model: the DENSE model; pruned in place per point and restored (dense again on return).
        calib_ids: (n_samples, seq_len) calibration windows, shared by every method (None only
            for magnitude-only sweeps).
        eval_ids: (1, n_tokens) evaluation text, non-overlapping ``seq_len`` windows.
        fingerprint: ``model_fingerprint(...)`` of the model's weights.
        group: comparison group for magnitude/Wanda (None = each method's reference default).
        calibration: description of the calibration data (``get_calibration_ids``'s dict; add
            a hash of pasted text) for captions and the cache key.
        seq_len: evaluation window (default: the model's context capped at 2048).
        max_windows: evaluate only the first windows (None = all).
        callback: ``callback(done, total, row)`` after each point (the UI's progress).
        dense: an existing ``WeightBackup`` of the dense weights to restore from (saves a copy
            of the weights); None = take one now.
        model_for_point: a context manager factory entered around each computed point, yielding
            the dense model to prune (a service takes its shared model per point with it, so other
            jobs run between points); None = ``model`` throughout.
    Returns:
        DataFrame with ``SWEEP_COLUMNS``; ``cached`` says which points came from disk.
    """
    seq_len = resolve_seq_len(model, seq_len)
    context, shared = cache_context(fingerprint, calib_ids, eval_ids, calibration=calibration,
                                    eval_label=eval_label, seq_len=seq_len,
                                    max_windows=max_windows)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    points = sweep_points(methods, sparsities, structures, group=group,
                          include_dense=include_dense)
    hold = model_for_point or (lambda: nullcontext(model))
    backup = dense
    rows = []
    for done, config in enumerate(tqdm(points, desc="sweep", disable=not show_progress), 1):
        key = point_key(config, context)
        path = cache / f"{key}.json"
        row = _read_cached_row(path)
        if row is None:
            used = config is not None and config.needs_calibration
            with hold() as point_model:
                backup = backup or WeightBackup(point_model)  # taken while the model is held
                try:
                    computed = _compute_point(point_model, config, calib_ids, eval_ids,
                                              seq_len=seq_len, max_windows=max_windows,
                                              batch_size=batch_size)
                finally:
                    backup.restore(point_model)  # dense again before anyone else gets it
            row = {**_point_labels(config), **shared, "key": key,
                   "calibration": shared["calibration"] if used else "-", **computed}
            write_json_atomic(path, {"row": row, "context": context})
            row["cached"] = False
        rows.append(row)
        if callback is not None:
            callback(done, len(points), row)
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)

