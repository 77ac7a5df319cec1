"""The expected-error suite through the named API (issue 21): every bad value of every endpoint,
tab 7 and the checkbox lists included, is refused before the queue with a message that names the
field; the log has one line per refusal and no traceback; a refusal does not wait behind a job
that holds the model."""
from __future__ import annotations

import logging

import httpx
import pytest

from app_server import serve_app
from helpers import PRUNE, SETUP
from wanda_viz.ui import inputs

GENERATE = dict(prompt="the cat", run="wanda 50%", max_new_tokens=4, do_sample=False,
                temperature=1.0, top_p=1.0, seed=0)
SWEEP = dict(methods=["wanda"], sparsities=[0.5], structures=["unstructured"])
WHY = dict(sparsity=0.5, ks=[1, 2], seeds=1)
SINKS = dict(windows=[16], sink_tokens=4, seeds=1, run_interventions=False, sparsity=0.5,
             view_text="the cat")
# (endpoint, arguments, what the message must say)
CASES = [
    ("/prune", {"n_samples": 8.7}, "calibration windows must be a whole number between 1 and"),
    ("/prune", {"sparsity": None}, "Sparsity must be a number between 0 and 0.95, got None"),
    ("/prune", {"sparsity": 1.5}, "Sparsity must be a number between 0 and 0.95, got 1.5"),
    ("/prune", {"seq_len": None}, "tokens per window (seq_len) must be a whole number"),
    ("/prune", {"seed": -1}, "seed must be a whole number >= 0, got -1"),
    ("/prune", {"method": "foo"}, "Method must be one of: "),
    ("/prune", {"structure": "3:5"}, "Structure must be one of: "),
    ("/prune", {"group": "diagonal"}, "Comparison group must be one of: "),
    ("/prune", {"device": "tpu"}, "Device must be one of: auto, cpu"),
    ("/prune", {"dtype": "int8"}, "dtype must be one of: "),
    ("/prune", {"calib_source": "nope"}, "Calibration text must be one of: "),
    ("/prune", {"eval_source": 5}, "Perplexity text must be one of: "),
    ("/prune", {"model_choice": "a" * 5000}, "the model name has 5,000 characters"),
    ("/prune", {"model_choice": 7}, "Model must be text, got 7"),
    ("/prune", {"calib_source": inputs.PASTE, "calib_text": "word " * 300},
     "the pasted calibration text has 1,500 characters; this host accepts at most 1,000"),
    ("/prune", {"method": "wanda", "structure": "2:4", "sparsity": 0.7}, "2:4"),
    ("/preset", {"preset": "nope"}, "Preset must be one of: "),
    ("/compare", {"with_sparsegpt": None}, "also SparseGPT (slower) must be true or false"),
    ("/compare", {"structure": "2:4", "sparsity": 0.7}, "2:4"),
    ("/zero_shot", {"limit": 2.5}, "Items per task (first N; host default) must be a whole"),
    ("/zero_shot", {"tasks": ["nope"]}, "Tasks: nope not among the choices"),
    ("/zero_shot", {"tasks": []}, "choose at least one task"),
    ("/sinks", {"seeds": 2.5}, "random seeds must be a whole number between 1 and 5, got 2.5"),
    ("/sinks", {"windows": [7]}, "sliding windows W: 7 not among the choices"),
    ("/sinks", {"view_text": "x" * 60}, "the view text has 60 characters"),
    ("/sweep", {"methods": None}, "Methods must be a list of values from: "),
    ("/sweep", {"sparsities": None}, "Sparsities must be a list of values from: "),
    ("/sweep", {"sparsities": ["0.5"]}, "Sparsities: 0.5 not among the choices"),
    ("/sweep", {"structures": ["5:9"]}, "Structures: 5:9 not among the choices"),
    ("/why", {"seeds": 2.5}, "random seeds must be a whole number between 1 and 5, got 2.5"),
    ("/why", {"seeds": None}, "random seeds must be a whole number between 1 and 5, got None"),
    ("/why", {"sparsity": None}, "Sparsity of both masks must be a number between 0.1 and 0.9"),
    ("/why", {"ks": None}, "k: input channels cut per layer must be a list of values from"),
    ("/why", {"ks": [2.5]}, "k: input channels cut per layer: 2.5 not among the choices"),
    ("/ablation", {"sparsity": None}, "Ablation sparsity must be a number between 0.1 and 0.9"),
    ("/scores", {"layer": None, "sparsity": 0.5}, "choose a layer"),
    ("/scores", {"layer": "model.layers.0.mlp.up_proj", "sparsity": "x"},
     "Sparsity must be a number between 0.05 and 0.95, got 'x'"),
    ("/generate", {"prompt": "x" * 60}, "the prompt has 60 characters; this host accepts at most"),
    ("/generate", {"run": "nope"}, "choose one of this session's runs: wanda 50%"),
    ("/generate", {"do_sample": None}, "sample (else greedy) must be true or false, got None"),
    ("/generate", {"max_new_tokens": 0.5}, "max new tokens must be a whole number between 1"),
]
DEFAULTS = {"/prune": {**SETUP, **PRUNE}, "/preset": {**SETUP, "preset": "x"},
            "/sweep": SWEEP, "/why": WHY, "/ablation": {"sparsity": 0.5},
            "/scores": {}, "/generate": GENERATE,
            "/compare": {**SETUP, "sparsity": 0.5, "structure": "unstructured",
                         "with_sparsegpt": False},
            "/sinks": SINKS, "/zero_shot": {"tasks": ["rte"], "limit": 2, "metric": "acc"}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("WANDA_VIZ_MAX_TEXT_CHARS", "1000")
    monkeypatch.setenv("WANDA_VIZ_MAX_PROMPT_CHARS", "50")
    with serve_app(tmp_path_factory.mktemp("errors")) as url:
        yield url
    monkeypatch.undo()


@pytest.fixture(scope="module")
def pruned_client(server):
    from gradio_client import Client
    client = Client(server, verbose=False, download_files=False)
    client.predict(**SETUP, **PRUNE, api_name="/prune")
    yield client
    client.close()


def _refusal(client, endpoint: str, arguments: dict) -> str:
    from gradio_client.exceptions import ValidationError
    with pytest.raises(ValidationError) as err:
        client.predict(**{**DEFAULTS[endpoint], **arguments}, api_name=endpoint)
    return str(err.value)


def test_every_expected_error_names_its_field_once_without_traceback(pruned_client, caplog,
                                                                      capfd):
    with caplog.at_level(logging.INFO):
        for endpoint, arguments, expected in CASES:
            message = _refusal(pruned_client, endpoint, arguments)
            assert expected in message, (endpoint, arguments, message)
            assert "Errno" not in message and "upstream Gradio app" not in message
    output = capfd.readouterr()
    assert "Traceback" not in output.out + output.err
    assert not [r for r in caplog.records if r.exc_info]
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == len(CASES), [r.getMessage() for r in lines]
    assert all(r.name.startswith("wanda_viz") for r in lines)


def test_a_server_path_in_the_upload_payload_gets_a_message(pruned_client, server, capfd):
    """Raw HTTP (gradio_client would upload its own copy of the file)."""
    info = pruned_client.view_api(print_info=False, return_format="dict")
    names = [p["parameter_name"] for p in info["named_endpoints"]["/prune"]["parameters"]]
    payload = {**SETUP, **PRUNE, "calib_source": inputs.UPLOAD,
               "calib_file": {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}}
    fn_index = next(i for i, dep in enumerate(pruned_client.config["dependencies"])
                    if dep.get("api_name") == "prune")
    response = httpx.post(f"{server}gradio_api/queue/join", json={
        "data": [None, *(payload[name] for name in names)], "fn_index": fn_index,  # None: state
        "session_hash": "raw-http-client"})
    assert response.status_code == 422
    message = response.json()["detail"][0]["message"]
    assert "calib_file: the payload names a file on the server ('/etc/passwd')" in message
    assert "Traceback" not in "".join(capfd.readouterr())


def test_a_bad_value_is_refused_while_another_job_holds_the_model(pruned_client, server):
    """Before the queue: a fractional n_samples is answered at once, not after the jobs ahead."""
    from gradio_client import Client

    from wanda_viz.service.cache import MODELS
    other = Client(server, verbose=False, download_files=False)
    MODELS.lock.acquire()  # another user's job holds the model
    try:
        busy = other.submit(**SETUP, **PRUNE, api_name="/prune")  # runs, waits for the model
        assert MODELS.lock.wait_for_waiters(1, 60)
        job = pruned_client.submit(**{**SETUP, "n_samples": 8.7}, **PRUNE, api_name="/prune")
        with pytest.raises(ValueError, match="calibration windows must be a whole number"):
            job.result(timeout=30)
    finally:
        MODELS.lock.release()
    busy.result(timeout=120)
    other.close()


def test_uploads_above_the_host_limit_are_refused_at_the_upload(pruned_client, server,
                                                                 tmp_path):
    """``serve`` sets Gradio's ``max_file_size`` from WANDA_VIZ_MAX_UPLOAD_MB (2 MB)."""
    from gradio_client import handle_file
    big = tmp_path / "big.txt"
    big.write_bytes(b"the cat sat on the mat . " * 100_000)  # 2.5 MB
    with pytest.raises(ValueError, match="exceeds the maximum file size of 2097152 bytes"):
        pruned_client.predict(**{**SETUP, "calib_source": inputs.UPLOAD,
                                 "calib_file": handle_file(str(big))}, **PRUNE, api_name="/prune")
    with open(big, "rb") as file:  # the server refuses it too, whatever the client checks
        response = httpx.post(f"{server}gradio_api/upload", files={"files": file})
    assert response.status_code == 413
