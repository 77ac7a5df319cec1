"""CLI ``sweep`` and ``outliers`` end to end on a tiny LLaMA saved with an offline tokenizer."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import SENTENCES, save_sentence_llama
from wanda_viz.cli import main

@pytest.fixture
def saved_model(tmp_path) -> Path:
    return save_sentence_llama(tmp_path / "tiny-llama")


@pytest.fixture
def text_files(tmp_path) -> tuple[Path, Path]:
    calib, evaluation = tmp_path / "calib.txt", tmp_path / "eval.txt"
    calib.write_text((SENTENCES + " ") * 8, encoding="utf-8")
    evaluation.write_text((SENTENCES + " ") * 6, encoding="utf-8")
    return calib, evaluation


def _common(model: Path, calib: Path) -> list[str]:
    return ["--model", str(model), "--device", "cpu", "--calib-file", str(calib),
            "--n-samples", "4", "--seq-len", "16"]


def test_sweep_command_writes_outputs_and_uses_cache(saved_model, text_files, tmp_path, capsys):
    calib, evaluation = text_files
    out_csv, out_json, report = tmp_path / "s.csv", tmp_path / "s.json", tmp_path / "r.html"
    argv = ["sweep", *_common(saved_model, calib), "--eval-file", str(evaluation),
            "--methods", "magnitude,wanda,sparsegpt", "--sparsities", "0.3,0.5",
            "--structures", "unstructured,2:4", "--max-eval-windows", "2",
            "--cache-dir", str(tmp_path / "cache"), "--out-csv", str(out_csv),
            "--out-json", str(out_json), "--report", str(report)]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "10 computed, 0 from cache" in first  # dense + 3 x 2 sparsities + 3 x 2:4
    assert "protocol: calibration: calib.txt" in first or "calib.txt, 4 x 16 tokens" in first
    table = pd.read_csv(out_csv, comment="#")
    assert len(table) == 10 and set(table["method"]) == {"dense", "magnitude", "wanda",
                                                         "sparsegpt"}
    assert (table["perplexity"] > 1).all()
    assert json.loads(out_json.read_text())["rows"][0]["method"] == "dense"
    html = report.read_text()
    assert "Perplexity vs sparsity" in html and "<table" in html and "Protocol" in html
    assert main(argv) == 0
    assert "0 computed, 10 from cache" in capsys.readouterr().out


def test_sweep_command_rejects_bad_methods(saved_model, text_files, capsys):
    calib, evaluation = text_files
    argv = ["sweep", *_common(saved_model, calib), "--eval-file", str(evaluation),
            "--methods", "wanda,optimal"]
    assert main(argv) == 2
    assert "--methods" in capsys.readouterr().err


def test_outliers_command_prints_tables(saved_model, text_files, tmp_path, capsys):
    calib, _ = text_files
    out_csv, out_json = tmp_path / "o.csv", tmp_path / "o.json"
    argv = ["outliers", *_common(saved_model, calib), "--top-k", "5",
            "--out-csv", str(out_csv), "--out-json", str(out_json)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Massive Activations" in out and "LLM.int8 outlier features" in out
    assert "model.layers.1" in out
    layers = pd.read_csv(out_csv, comment="#")
    assert list(layers["layer"]) == ["model.layers.0", "model.layers.1"]
    assert (tmp_path / "o_features.csv").is_file() and (tmp_path / "o_massive.csv").is_file()
    payload = json.loads(out_json.read_text())
    assert set(payload) >= {"protocol", "layers", "features", "massive"}


@pytest.mark.slow
def test_commands_on_the_demo_model(data_dir, tmp_path, capsys):
    from wanda_viz.loading import DEMO_MODEL_DIR

    if not (DEMO_MODEL_DIR / "config.json").is_file():
        pytest.skip("the embedded demo model is not built yet")
    corpus = data_dir / "corpus" / "tinystories-valid-excerpt.txt"
    common = ["--device", "cpu", "--calib-file", str(corpus), "--n-samples", "8",
              "--seq-len", "128"]
    assert main(["outliers", *common, "--out-csv", str(tmp_path / "o.csv")]) == 0
    assert "Massive Activations" in capsys.readouterr().out
    argv = ["sweep", *common, "--eval-dataset", "wikitext2", "--data-dir", str(data_dir),
            "--max-eval-windows", "4", "--methods", "magnitude,wanda", "--sparsities", "0.5",
            "--cache-dir", str(tmp_path / "cache"), "--out-csv", str(tmp_path / "s.csv")]
    assert main(argv) == 0
    table = pd.read_csv(tmp_path / "s.csv", comment="#").set_index("method")
    assert list(table.index) == ["dense", "magnitude", "wanda"]
    assert table["perplexity"].between(1, 1e6).all()
