"""Bundled data and offline defaults: the bundled WikiText-2 slices are selectable by name, become
the default only when neither the data folder nor the hub has WikiText-2, and are always named in
the label; the hub probe runs once per process and is remembered.
"""
from __future__ import annotations

import socket
import time

import pytest

import wanda_viz.data as data_module
import wanda_viz.hub as hub
from helpers import make_tokenizer
from wanda_viz.data import (BUNDLED_CALIB, BUNDLED_DATA_DIR, BUNDLED_EVAL, BUNDLED_SOURCES,
                            DATA_ENV, DataUnavailableError, default_calibration_source,
                            default_eval_source, get_calibration_ids, get_eval_ids,
                            load_wikitext2_text, tokenize_text)


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setattr(data_module, "hub_reachable", lambda: False)
    monkeypatch.delenv(DATA_ENV, raising=False)


def test_bundled_files_are_prefixes_of_the_wikitext_splits(data_dir):
    """Cut at an article boundary, otherwise byte for byte (so the first eval windows match)."""
    for name, split in ((BUNDLED_CALIB, "wiki.valid.raw"), (BUNDLED_EVAL, "wiki.test.raw")):
        bundled = (BUNDLED_DATA_DIR / BUNDLED_SOURCES[name][0]).read_text(encoding="utf-8")
        full = (data_dir / "wikitext-2-raw" / split).read_text(encoding="utf-8")
        assert 200_000 < len(bundled) < len(full)
        assert full.startswith(bundled)
        assert full[len(bundled):].startswith(" = ")  # the next article's heading
    assert (BUNDLED_DATA_DIR / "README.md").read_text().count("CC BY-SA 3.0") >= 1


def test_defaults_prefer_data_folder_then_hub_then_bundled(tmp_path, data_dir, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setattr(data_module, "hub_reachable", lambda: False)
    assert default_calibration_source() == BUNDLED_CALIB
    assert default_eval_source() == BUNDLED_EVAL
    # The shared folder has validation and test, not train.
    assert default_calibration_source(data_dir) == "wikitext2-valid"
    assert default_eval_source(data_dir) == "wikitext2"
    monkeypatch.setenv(DATA_ENV, str(data_dir))
    assert default_eval_source() == "wikitext2"
    monkeypatch.delenv(DATA_ENV)
    monkeypatch.setattr(data_module, "hub_reachable", lambda: True)
    assert default_calibration_source() == "wikitext2"
    assert default_eval_source(tmp_path) == "wikitext2"


def test_bundled_sources_load_by_name_and_say_so(offline):
    tokenizer = make_tokenizer()
    ids, info = get_calibration_ids(tokenizer, source=BUNDLED_CALIB, n_samples=2, seq_len=16)
    assert ids.shape == (2, 16) and info["source"] == BUNDLED_CALIB
    eval_ids, label = get_eval_ids(tokenizer, source=BUNDLED_EVAL)
    text = (BUNDLED_DATA_DIR / BUNDLED_SOURCES[BUNDLED_EVAL][0]).read_text(encoding="utf-8")
    assert label.startswith("WikiText-2 raw test, bundled slice")
    assert eval_ids.equal(tokenize_text(tokenizer, text))


def test_named_wikitext_offline_fails_fast_and_points_to_bundled(offline):
    """Asking for the full split offline is an error naming the bundled data, never a swap."""
    with pytest.raises(DataUnavailableError, match=BUNDLED_CALIB):
        load_wikitext2_text("train")
    with pytest.raises(DataUnavailableError, match=BUNDLED_EVAL):
        get_eval_ids(make_tokenizer(), source="wikitext2")


def test_hub_probe_runs_once_and_is_remembered(monkeypatch):
    calls = []

    def refused(address, timeout):
        calls.append((address, timeout))
        raise ConnectionRefusedError("no network")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "create_connection", refused)
    hub.forget_hub_probe()
    try:
        assert hub.hub_reachable() is False and hub.hub_reachable() is False
        assert len(calls) == 1 and calls[0][1] == hub.PROBE_TIMEOUT_S <= 2.0
    finally:
        hub.forget_hub_probe()


def test_offline_env_flag_skips_the_probe(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection",
                        lambda *a, **k: pytest.fail("probed despite HF_HUB_OFFLINE=1"))
    started = time.perf_counter()
    assert hub.hub_reachable() is False
    assert time.perf_counter() - started < 0.5
