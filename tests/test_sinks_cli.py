"""CLI ``sinks`` end to end on a tiny saved LLaMA: the JSON's keys and shapes, cache, bad input."""
from __future__ import annotations

import json

import pytest

from helpers import SENTENCES, save_sentence_llama
from wanda_viz.cli import main


@pytest.fixture
def saved_model(tmp_path):
    return save_sentence_llama(tmp_path / "tiny-llama")


@pytest.fixture
def text_files(tmp_path):
    calib, evaluation = tmp_path / "calib.txt", tmp_path / "eval.txt"
    calib.write_text((SENTENCES + " ") * 8, encoding="utf-8")
    evaluation.write_text((SENTENCES + " ") * 6, encoding="utf-8")
    return calib, evaluation


def _args(model, calib, evaluation, tmp_path) -> list[str]:
    return ["sinks", "--model", str(model), "--device", "cpu", "--calib-file", str(calib),
            "--n-samples", "4", "--seq-len", "16", "--eval-file", str(evaluation),
            "--windows", "2,4", "--sink-tokens", "1", "--window-chunk", "16",
            "--window-chunks", "2", "--seeds", "0", "--cache-dir", str(tmp_path / "cache")]


def test_sinks_command_writes_json_and_reuses_cache(saved_model, text_files, tmp_path, capsys):
    calib, evaluation = text_files
    out = tmp_path / "sinks.json"
    assert main(_args(saved_model, calib, evaluation, tmp_path) + ["--json", str(out),
                                                                   "--bias-block", "0"]) == 0
    printed = capsys.readouterr().out
    assert "In block 0, the first token's part" in printed
    assert "Attention on the first token" in printed and "Sliding-window attention" in printed
    payload = json.loads(out.read_text())
    attention = payload["first_token_attention"]
    assert len(attention) == 2 and all(len(row) == 4 for row in attention)   # blocks x heads
    assert all(0.0 <= value <= 1.0 for row in attention for value in row)
    assert len(payload["bias"]) == 2 and payload["settings"]["sparsity"] == 0.5
    assert payload["model"] == str(saved_model) and "commit" in payload
    window = payload["sliding_window"]
    assert [(row["window"], row["sink_tokens"]) for row in window] == [
        (None, 0), (2, 0), (2, 1), (4, 0), (4, 1)]
    assert not any(row["cached"] for row in window)
    # a random tiny model has no massive activations: said, not hidden
    assert payload["interventions"] is None and payload["notes"]
    assert main(_args(saved_model, calib, evaluation, tmp_path) + ["--json", str(out)]) == 0
    assert all(row["cached"] for row in json.loads(out.read_text())["sliding_window"])


@pytest.mark.parametrize("extra,message", [
    (["--windows", "0,4"], "windows must be positive"),
    (["--windows", "2,40"], "largest window"),
    (["--sparsity", "1.5"], "sparsity must be in"),
    (["--seeds", "a"], "--seeds must be comma-separated integers"),
    (["--bias-block", "7"], "--bias-block must be in 0..1"),
])
def test_sinks_command_bad_input(saved_model, text_files, tmp_path, capsys, extra, message):
    calib, evaluation = text_files
    assert main(_args(saved_model, calib, evaluation, tmp_path) + extra) == 2
    assert message in capsys.readouterr().err
