"""Bad input gets a message that names what was wrong; expected errors are logged as one line.

Issue 11: uploads of random bytes, non-prunable layers for /scores, unknown hub id vs offline hub
vs missing local folder, and the logging of expected vs unexpected errors.
"""
from __future__ import annotations

import logging
import random

import gradio as gr
import pytest

from helpers import PRUNE, SETUP, prune_with_ui as _prune
from wanda_viz.analysis.scores import check_prunable_layer
from wanda_viz.service.cache import check_model_allowed, resolve_model_source
from wanda_viz.service.limits import get_limits
from wanda_viz.testing import make_tiny_model
from wanda_viz.ui import inputs
from wanda_viz.ui.wiring import readable


def _specs(**changes):
    return inputs.build_specs(**{**SETUP, **changes})


# -- uploads -----------------------------------------------------------------------------------

def test_random_bytes_upload_is_refused_and_named_as_an_upload(tmp_path, app_env):
    noise = tmp_path / "notes.txt"
    rng = random.Random(1)
    noise.write_bytes(bytes(rng.randrange(256) for _ in range(2000)))
    with pytest.raises(ValueError, match="the uploaded file 'notes.txt' is not UTF-8 text"):
        _specs(calib_source=inputs.UPLOAD, calib_file=str(noise))


def test_text_upload_is_captioned_as_an_upload(tmp_path, app_env):
    upload = tmp_path / "notes.txt"
    upload.write_text("the cat sat on the mat . " * 200, encoding="utf-8")
    _model, calib, _evaluation, _limits = _specs(calib_source=inputs.UPLOAD,
                                                 calib_file=str(upload))
    assert calib.text_label == f"uploaded file notes.txt ({len('the cat sat on the mat . ') * 200}"\
        " characters)"
    session = _prune(calib_source=inputs.UPLOAD, calib_file=str(upload))["session"]
    assert session.calibration["source"].startswith("uploaded file notes.txt")
    assert "pasted" not in session.calibration["source"]


# -- layers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["model.layers.0", "model.embed_tokens", "model.norm", "lm_head",
                                  "nonsense"])
def test_non_prunable_layer_names_the_choices(name):
    model = make_tiny_model("llama")
    with pytest.raises(ValueError) as err:
        check_prunable_layer(model, name)
    message = str(err.value)
    assert f"{name!r} is not a prunable linear layer" in message
    assert "model.layers.<block 0-" in message and "mlp.down_proj" in message
    check_prunable_layer(model, "model.layers.0.mlp.down_proj")  # a real one passes


def test_scores_endpoint_refuses_a_block_with_the_choices(app_env):
    from wanda_viz.ui.tabs import scores
    session = _prune()["session"]
    with pytest.raises(gr.Error, match="not a prunable linear layer: choose model.layers"):
        scores.on_scores(session, layer="model.layers.0", sparsity=0.5)


# -- models: three different failures, three different messages --------------------------------

def test_missing_local_folder_is_not_called_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDA_VIZ_ALLOW_LOCAL", "1")
    with pytest.raises(FileNotFoundError, match="local model folder .* does not exist"):
        resolve_model_source(str(tmp_path / "nope"), get_limits())


def test_offline_hub_says_offline(monkeypatch):
    import wanda_viz.service.cache as cache
    monkeypatch.setattr(cache, "hub_reachable", lambda *a, **k: False)
    with pytest.raises(OSError, match="cannot reach the Hugging Face Hub .this host is offline.*"
                                      "cannot be fetched or even checked"):
        check_model_allowed("someone/some-model", get_limits())


def test_unknown_hub_id_says_unknown(monkeypatch):
    import transformers
    import wanda_viz.service.cache as cache
    monkeypatch.setattr(cache, "hub_reachable", lambda *a, **k: True)

    def from_pretrained(name, local_files_only=False, **kwargs):
        raise OSError(f"{name} is not a local folder and is not a valid model identifier listed "
                      "on 'https://huggingface.co/models'")
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", from_pretrained)
    with pytest.raises(OSError, match="is not a model on the Hugging Face Hub .unknown id"):
        check_model_allowed("someone/no-such-model", get_limits())


# -- logging -----------------------------------------------------------------------------------

def test_expected_errors_log_one_line_and_unexpected_ones_a_traceback(caplog):
    @readable
    def bad_input():
        raise ValueError("sparsity must be in [0, 1), got 2")

    @readable
    def bug():
        return {}["missing"]

    with caplog.at_level(logging.WARNING, logger="wanda_viz.ui.wiring"):
        with pytest.raises(gr.Error) as expected:
            bad_input()
        with pytest.raises(gr.Error) as unexpected:
            bug()
    assert expected.value.message == "sparsity must be in [0, 1), got 2"
    assert not expected.value.print_exception and not unexpected.value.print_exception
    assert "internal error (KeyError" in unexpected.value.message
    first, second = caplog.records
    assert first.levelno == logging.WARNING and first.exc_info is None
    assert "sparsity must be in [0, 1)" in first.getMessage()
    assert second.levelno == logging.ERROR and second.exc_info is not None


# -- one policy for the command line and the dashboard ----------------------------------------

@pytest.mark.parametrize("error,expected", [
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
                  "memory: you tried to allocate 4 GB"), "error: out of memory: use fewer"),
    (MemoryError(), "error: out of memory: use fewer"),
    (ValueError("sparsity must be in [0, 1), got 2.0"), "error: sparsity must be in"),
])
def test_cli_prints_one_line_without_traceback(error, expected, monkeypatch, capsys):
    from wanda_viz.cli import main, prune

    def fail(args):
        raise error

    monkeypatch.setattr(prune, "run", fail)
    assert main(["prune"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and "Traceback" not in err and err.count("\n") == 1


def test_cli_lets_a_bug_through_with_its_traceback(monkeypatch):
    from wanda_viz.cli import main, prune
    monkeypatch.setattr(prune, "run", lambda args: {}["missing"])
    with pytest.raises(KeyError):
        main(["prune"])


def test_dashboard_and_cli_share_the_policy():
    from wanda_viz import errors
    from wanda_viz.service import user_message
    assert user_message is errors.user_message


def test_local_path_rule_is_one_function(tmp_path):
    from wanda_viz.loading import is_local_path
    assert is_local_path(tmp_path) and is_local_path("./x") and is_local_path("a/b/c")
    assert not is_local_path("gpt2") and not is_local_path("facebook/opt-125m")
    with pytest.raises(ValueError, match="local model folders are disabled"):
        resolve_model_source("a/b/c", get_limits())  # the dashboard applies the same rule
