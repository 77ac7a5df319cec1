"""Command line: ``main([...])`` end to end on a tiny saved LLaMA with an offline tokenizer.

User errors end with exit code 2 and exactly one ``error: ...`` line on stderr.
"""
from __future__ import annotations

import json

import datasets
import pytest
from transformers import AutoModelForCausalLM, BertConfig, BertForMaskedLM

import wanda_viz.data as data_module
from helpers import make_tokenizer, prunable_zero_count, save_tiny_model, write_text
from wanda_viz.cli import main
from wanda_viz.data import DATA_ENV
from wanda_viz.layers import (count_prunable_params, find_decoder_layers, find_prunable_layers,
                              weight_matrix)


@pytest.fixture
def tiny_model_dir(tmp_path):
    """A saved tiny random LLaMA (context 64) with a word-level tokenizer."""
    return save_tiny_model(tmp_path / "tiny-llama", "llama")


@pytest.fixture
def texts(tmp_path):
    return write_text(tmp_path / "calib.txt", 600, seed=1), write_text(tmp_path / "eval.txt", 400,
                                                                       seed=2)


def _error_line(capsys) -> str:
    """The one ``error:`` line on stderr (transformers' progress bars may share stderr)."""
    lines = capsys.readouterr().err.replace("\r", "\n").splitlines()
    errors = [line for line in lines if "error" in line.lower()]
    assert len(errors) == 1, errors
    assert errors[0].startswith("error: ")
    assert "Traceback" not in lines
    return errors[0]


def _prune_args(model_dir, texts, *extra):
    calib, evaluation = texts
    return ["prune", "--model", str(model_dir), "--device", "cpu", "--calib-file", str(calib),
            "--eval-file", str(evaluation), "--n-samples", "4", "--seq-len", "16", *extra]


@pytest.mark.parametrize("method,structure", [("wanda", "unstructured"), ("sparsegpt", "2:4"),
                                              ("magnitude", "4:8")])
def test_full_prune_run_saves_a_loadable_pruned_model(method, structure, tiny_model_dir, texts,
                                                      tmp_path, capsys):
    out_dir, summary_file = tmp_path / "pruned", tmp_path / "summary.json"
    code = main(_prune_args(tiny_model_dir, texts, "--method", method, "--structure", structure,
                            "--json", str(summary_file), "--save-model", str(out_dir)))
    assert code == 0
    stdout = capsys.readouterr().out
    assert "achieved sparsity 0.5000" in stdout and "perplexity" in stdout
    summary = json.loads(summary_file.read_text())
    assert summary["overall_sparsity"] == pytest.approx(0.5)
    assert summary["config"]["method"] == method and summary["config"]["structure"] == structure
    assert 1 < summary["perplexity"] < 1000
    assert "eval.txt" in summary["eval_protocol"]
    if method != "magnitude":
        assert summary["calibration"]["n_samples"] == 4
        assert summary["calibration"]["seq_len"] == 16
    reloaded = AutoModelForCausalLM.from_pretrained(out_dir)
    assert prunable_zero_count(reloaded) == count_prunable_params(reloaded) // 2
    prefix, blocks = find_decoder_layers(reloaded)
    for layer in find_prunable_layers(blocks, prefix).values():
        assert (weight_matrix(layer) == 0).float().mean().item() == pytest.approx(0.5)
    assert (out_dir / "tokenizer.json").is_file()


def test_compare_dense_prints_both(tiny_model_dir, texts, capsys):
    code = main(_prune_args(tiny_model_dir, texts, "--compare-dense", "--max-eval-windows", "2"))
    assert code == 0
    stdout = capsys.readouterr().out
    assert "dense perplexity" in stdout and "first 2 of" in stdout


def test_nonexistent_model_folder(tmp_path, capsys):
    code = main(["prune", "--model", str(tmp_path / "no" / "such-model"), "--method", "magnitude",
                 "--eval-dataset", "none"])
    assert code == 2
    assert "does not exist" in _error_line(capsys)


def test_non_causal_model(tmp_path, capsys):
    config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=4, intermediate_size=64)
    BertForMaskedLM(config).save_pretrained(tmp_path / "bert")
    make_tokenizer().save_pretrained(tmp_path / "bert")
    code = main(["prune", "--model", str(tmp_path / "bert"), "--device", "cpu",
                 "--method", "magnitude", "--eval-dataset", "none"])
    assert code == 2
    assert "not a causal language model" in _error_line(capsys)


@pytest.mark.parametrize("extra,message", [
    (["--sparsity", "0.3", "--structure", "2:4"], "requires sparsity == 2/4"),
    (["--sparsity", "1.5"], "sparsity must be in"),
    (["--structure", "2of4"], "structure must be"),
    (["--method", "sparsegpt", "--group", "row"], "group does not apply"),
])
def test_bad_config_is_one_error_line(extra, message, tiny_model_dir, texts, capsys):
    assert main(_prune_args(tiny_model_dir, texts, *extra)) == 2
    assert message in _error_line(capsys)


def test_missing_calibration_file(tiny_model_dir, texts, tmp_path, capsys):
    args = _prune_args(tiny_model_dir, texts)
    args[args.index("--calib-file") + 1] = str(tmp_path / "missing.txt")
    assert main(args) == 2
    assert "missing.txt" in _error_line(capsys)


def test_offline_dataset_is_one_error_line(tiny_model_dir, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise ConnectionError("offline")
    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setattr(data_module, "hub_reachable", lambda: False)
    monkeypatch.delenv(DATA_ENV, raising=False)
    code = main(["prune", "--model", str(tiny_model_dir), "--device", "cpu", "--n-samples", "2",
                 "--seq-len", "8", "--eval-dataset", "none", "--calib-dataset", "wikitext2"])
    assert code == 2
    line = _error_line(capsys)
    assert "WikiText-2 raw train" in line and "bundled-wikitext2-valid" in line


def test_offline_defaults_use_the_bundled_data_and_say_so(tiny_model_dir, monkeypatch, tmp_path):
    monkeypatch.setattr(data_module, "hub_reachable", lambda: False)
    monkeypatch.delenv(DATA_ENV, raising=False)
    out = tmp_path / "result.json"
    code = main(["prune", "--model", str(tiny_model_dir), "--device", "cpu", "--n-samples", "2",
                 "--seq-len", "8", "--max-eval-windows", "2", "--json", str(out)])
    assert code == 0
    summary = json.loads(out.read_text())
    assert "bundled-wikitext2-valid" in json.dumps(summary["calibration"])
    assert summary["eval_protocol"].startswith("WikiText-2 raw test, bundled slice")


def test_calibration_longer_than_context(tiny_model_dir, texts, capsys):
    args = _prune_args(tiny_model_dir, texts)
    args[args.index("--seq-len") + 1] = "65"
    assert main(args) == 2
    assert "longer than the model allows" in _error_line(capsys)


def test_argparse_rejects_unknown_method(capsys):
    with pytest.raises(SystemExit) as info:
        main(["prune", "--method", "random"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_magnitude_without_calibration_data(tiny_model_dir, texts, capsys, monkeypatch):
    """Magnitude needs no calibration: the (absent) calibration dataset is never touched."""
    def offline(*args, **kwargs):
        raise AssertionError("calibration data must not be loaded for magnitude")
    monkeypatch.setattr(datasets, "load_dataset", offline)
    _, evaluation = texts
    code = main(["prune", "--model", str(tiny_model_dir), "--device", "cpu", "--method",
                 "magnitude", "--eval-file", str(evaluation), "--seq-len", "16"])
    assert code == 0
    assert "magnitude 50%: achieved sparsity 0.5000" in capsys.readouterr().out


# -- issue 11: fail before the work, never lose the work ----------------------------------------

def _refuse_to_load(monkeypatch):
    import wanda_viz.cli.common as common

    def load(*args, **kwargs):
        raise AssertionError("the model was loaded before the inputs were checked")
    monkeypatch.setattr(common, "load_model", load)


def test_missing_eval_data_fails_before_loading_and_saves_nothing(tiny_model_dir, texts, tmp_path,
                                                                  monkeypatch, capsys):
    monkeypatch.setattr(data_module, "hub_reachable", lambda: False)
    monkeypatch.delenv(DATA_ENV, raising=False)
    _refuse_to_load(monkeypatch)
    out_dir = tmp_path / "pruned"
    code = main(["prune", "--model", str(tiny_model_dir), "--calib-file", str(texts[0]),
                 "--eval-dataset", "wikitext2", "--save-model", str(out_dir)])
    assert code == 2
    assert "WikiText-2 raw test" in _error_line(capsys)
    assert not out_dir.exists()


@pytest.mark.parametrize("flag", ["--save-model", "--json"])
def test_unwritable_output_fails_before_loading(flag, tiny_model_dir, texts, tmp_path, monkeypatch,
                                                capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    _refuse_to_load(monkeypatch)
    code = main(_prune_args(tiny_model_dir, texts, flag, str(blocker / "out")))
    assert code == 2
    line = _error_line(capsys)
    assert "cannot write" in line and "is a file, not a folder" in line


def test_pruned_model_is_saved_before_a_failing_evaluation(tiny_model_dir, texts, tmp_path,
                                                           monkeypatch, capsys):
    import wanda_viz.cli.prune as prune_cli

    def broken_evaluation(*args, **kwargs):
        raise OSError("the disk holding the evaluation text went away")
    monkeypatch.setattr(prune_cli, "evaluate", broken_evaluation)
    out_dir = tmp_path / "pruned"
    assert main(_prune_args(tiny_model_dir, texts, "--save-model", str(out_dir))) == 2
    assert "went away" in _error_line(capsys)
    saved = AutoModelForCausalLM.from_pretrained(out_dir)
    assert prunable_zero_count(saved) == count_prunable_params(saved) // 2
