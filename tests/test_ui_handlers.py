"""Dashboard handlers called directly on a tiny checkpoint (no browser, no network).

The checkpoint (tiny random LLaMA + a BPE tokenizer) and a small data folder (synthetic WikiText-2
raw files) come from conftest.py's ``tiny_assets``; the app finds them through ``WANDA_VIZ_MODEL``
and ``WANDA_VIZ_DATA`` (``app_env``).
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import plotly.graph_objects as go
import pytest
import torch

from helpers import PRUNE, SETUP, dense_weights, documented_endpoints, save_ui_checkpoint
from helpers import prune_with_ui as _prune

# -- construction ----------------------------------------------------------------------------------

def test_build_demo_loads_no_model_and_names_endpoints(app_env):
    from wanda_viz.ui import build_demo
    from wanda_viz.service.cache import MODELS
    demo = build_demo()
    assert isinstance(demo, gr.Blocks)
    assert MODELS.loaded() == []
    endpoints = set(demo.get_api_info()["named_endpoints"])
    assert endpoints == documented_endpoints()  # every tab's endpoints, and nothing else
    assert {"/prune", "/why", "/sweep"} <= endpoints  # the reading itself works


# -- the default flow ------------------------------------------------------------------------------

def test_prune_fills_every_view_and_keeps_the_cached_model_dense(app_env):
    from wanda_viz.layers import WeightBackup
    from wanda_viz.service.cache import MODELS
    from wanda_viz.ui.tabs import generate, outliers, scores
    out = _prune()
    session, summary, runs, figure = out["session"], out["summary"], out["runs"], \
        out["sparsity_fig"]
    assert list(session.runs) == ["wanda 50%"]
    assert "Perplexity protocol" in summary and "seq_len 32" in summary and "no speedup" in \
        summary.replace("neither faster", "no speedup")
    assert runs.loc[0, "achieved sparsity"] == pytest.approx(0.5)
    assert isinstance(figure, go.Figure)
    (entry,) = MODELS._models.values()
    dense = WeightBackup(entry.model).weights
    assert all(torch.equal(dense[name], w) for name, w in entry.backup.weights.items())
    assert all(float((w == 0).float().mean()) < 0.1 for w in dense.values())
    views = outliers.on_render(session)
    assert isinstance(views["magnitudes"], go.Figure) and isinstance(views["heatmap"], go.Figure)
    assert len(views["tokens"]) == 32  # one highlighted token per position of the window
    run_pick, layer_pick = generate.on_runs(session)["run"], scores.on_layers(session)["layer"]
    assert run_pick.value == "wanda 50%" and layer_pick.value.startswith("model.layers.0")


def test_preset_runs_three_methods_on_the_same_windows(app_env):
    from wanda_viz.service import Session
    from wanda_viz.ui.tabs import model
    session = model.on_preset(Session(), preset="2:4: magnitude vs Wanda vs SparseGPT",
                              **SETUP)["session"]
    assert list(session.runs) == ["magnitude 50% 2:4", "wanda 50% 2:4", "sparsegpt 50% 2:4"]
    assert all(r.perplexity is not None for r in session.runs.values())
    from wanda_viz.service.weights_store import UPDATED_WEIGHTS
    assert [r.weights_key is not None for r in session.runs.values()] == [False, False, True]
    assert session.runs["sparsegpt 50% 2:4"].weights_key in UPDATED_WEIGHTS  # updated weights
    assert all(r.result.keep_masks is None and r.masks for r in session.runs.values())


def test_scores_masks_ablation_sweep_and_generation(app_env):
    from wanda_viz.ui import views
    from wanda_viz.ui.tabs import generate, masks, scores, sweep
    session = _prune()["session"]
    layer = views.layer_choices(session)[0]
    out = scores.on_scores(session, layer=layer, sparsity=0.5)
    assert isinstance(out["histograms"], go.Figure)
    assert len(out["thresholds"]) == 3 and len(out["agreement"]) == 3
    out = masks.on_render(out["session"])
    assert isinstance(out["row_sparsity"], go.Figure) and isinstance(out["categories"], go.Figure)
    assert "disagree" in out["text"]
    ablation = masks.on_ablation(session, sparsity=0.5)["ablation"]
    assert set(ablation["group"]) == {"-", "row", "layer", "input"}
    out = sweep.on_sweep(session, methods=["magnitude", "wanda"], sparsities=[0.5],
                         structures=["unstructured"])
    assert list(out["table"]["label"]) == ["dense", "magnitude 50%", "wanda 50%"]
    assert [Path(f).suffix for f in out["files"]] == [".csv", ".json", ".html"]
    again = sweep.on_sweep(session, methods=["magnitude", "wanda"], sparsities=[0.5],
                           structures=["unstructured"])["table"]
    assert again["cached"].all()  # extending or repeating reads the on-disk cache
    out = generate.on_generate(session, prompt="the cat sat", run="wanda 50%", max_new_tokens=8,
                               do_sample=False, temperature=1.0, top_p=1.0, seed=0)
    dense, pruned = out["dense"], out["pruned"]
    assert dense[0] == ("the cat sat", None) and 2 <= len(dense) <= 9 and 2 <= len(pruned) <= 9
    assert list(out["table"]["variant"]) == ["dense", "wanda 50%"]
    assert isinstance(out["probs"], go.Figure)


# -- several users ---------------------------------------------------------------------------------

def test_sessions_stay_separate_and_generation_uses_the_sessions_run(app_env):
    from wanda_viz.service.cache import MODELS
    from wanda_viz.ui.tabs import generate
    alice = _prune(method="magnitude")["session"]
    bob = _prune(method="sparsegpt")["session"]
    assert list(alice.runs) == ["magnitude 50%"] and list(bob.runs) == ["sparsegpt 50%"]
    with pytest.raises(gr.Error, match="magnitude 50%"):
        generate.on_generate(alice, prompt="the cat", run="sparsegpt 50%", max_new_tokens=4,
                             do_sample=False, temperature=1.0, top_p=1.0, seed=0)
    assert len(MODELS.loaded()) == 1  # one cached dense model serves both sessions
    (entry,) = MODELS._models.values()
    assert all(torch.equal(entry.backup.weights[n], w) for n, w in dense_weights().items())


def test_runs_accumulate_for_the_same_setup_and_reset_for_a_new_one(app_env, monkeypatch):
    monkeypatch.setenv("WANDA_VIZ_MAX_RUNS", "2")
    session = _prune(method="magnitude")["session"]
    session = _prune(session, method="wanda")["session"]
    session = _prune(session, method="wanda", group="layer")["session"]
    assert list(session.runs) == ["wanda 50%", "wanda 50% per-layer"]  # oldest dropped
    session = _prune(session, seq_len=48)["session"]  # other windows: runs are not comparable
    assert list(session.runs) == ["wanda 50%"] and session.calib_ids.shape == (4, 48)


def test_concurrent_sessions_never_see_each_others_pruning(app_env):
    from concurrent.futures import ThreadPoolExecutor
    from wanda_viz.service.cache import MODELS
    methods = ["magnitude", "sparsegpt", "wanda", "magnitude"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        sessions = list(pool.map(lambda m: _prune(method=m)["session"], methods))
    assert [list(s.runs) for s in sessions] == [[f"{m} 50%"] for m in methods]
    (entry,) = MODELS._models.values()
    assert all(torch.equal(entry.backup.weights[n], w) for n, w in dense_weights().items())


def test_model_cache_is_a_bounded_lru(app_env, tiny_assets, monkeypatch, tmp_path):
    from wanda_viz.service.cache import MODELS
    other = save_ui_checkpoint(tmp_path / "other")
    monkeypatch.setenv("WANDA_VIZ_ALLOW_LOCAL", "1")
    _prune()
    _prune(model_choice=str(other))
    assert [key[0] for key in MODELS.loaded()] == [str(other)]


# -- readable errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    (dict(model_choice="gpt2"), "cannot reach the Hugging Face Hub"),
    (dict(model_choice="not a model id!"), "not a Hugging Face model id"),
    (dict(model_choice="/tmp"), "local model folders are disabled"),
    (dict(sparsity=1.0), r"sparsity must be in \[0, 1\)"),
    (dict(structure="2:4", sparsity=0.6), "requires sparsity == 2/4"),
    (dict(calib_source="pasted text", calib_text="  "), "pasted calibration text is empty"),
    (dict(calib_source="pasted text", calib_text="the cat sat"), "needs more than seq_len"),
    (dict(calib_source="uploaded .txt file"), "upload a .txt file"),
    (dict(seq_len=4096), "seq_len must be between"),
    (dict(n_samples=0), "n_samples must be between"),
    pytest.param(dict(device="cuda"), "no CUDA GPU is available", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="the host has a GPU")),
])
def test_bad_inputs_give_readable_errors(app_env, changes, message):
    with pytest.raises(gr.Error, match=message):
        _prune(**changes)


def test_seq_len_longer_than_the_model_context(app_env, monkeypatch):
    monkeypatch.setenv("WANDA_VIZ_MAX_SEQ_LEN", "4096")
    with pytest.raises(gr.Error, match="longer than the model allows"):
        _prune(seq_len=512)


def test_non_causal_and_refused_models(app_env, monkeypatch, tmp_path):
    from transformers import BertConfig, GPT2Config
    from wanda_viz.service import cache
    monkeypatch.setenv("WANDA_VIZ_ALLOW_LOCAL", "1")
    BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
               intermediate_size=64).save_pretrained(tmp_path / "bert")
    with pytest.raises(gr.Error, match="not a causal language model"):
        _prune(model_choice=str(tmp_path / "bert"))
    monkeypatch.setenv("WANDA_VIZ_MAX_PARAMS", "1e6")
    monkeypatch.setattr(cache, "_hub_config", lambda name, limits: GPT2Config())
    with pytest.raises(gr.Error, match="this host allows at most"):
        _prune(model_choice="gpt2")
    remote = GPT2Config()
    remote.auto_map = {"AutoModelForCausalLM": "modeling.Custom"}
    monkeypatch.setattr(cache, "_hub_config", lambda name, limits: remote)
    with pytest.raises(gr.Error, match="remote code"):
        _prune(model_choice="someone/custom")


def test_out_of_memory_is_readable_and_the_app_keeps_serving(app_env, monkeypatch):
    from wanda_viz.service import jobs

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

    real_job = jobs.prune_job
    monkeypatch.setattr(jobs, "prune_job", out_of_memory)
    with pytest.raises(gr.Error, match="out of memory: use fewer"):
        _prune()
    monkeypatch.setattr(jobs, "prune_job", real_job)
    assert list(_prune()["session"].runs) == ["wanda 50%"]


def test_analyses_before_a_prune_ask_for_one(app_env):
    from wanda_viz.service import Session
    from wanda_viz.ui.tabs import generate, outliers
    with pytest.raises(gr.Error, match="Run a prune"):
        outliers.on_outliers(Session())
    with pytest.raises(gr.Error, match="Prune a model"):
        generate.on_generate(Session(), prompt="x", run="", max_new_tokens=4, do_sample=False,
                             temperature=1.0, top_p=1.0, seed=0)
    assert outliers.on_render(Session())["magnitudes"] is None


def test_gpu_jobs_use_spaces_gpu_only_when_spaces_is_installed(monkeypatch):
    import sys
    import types
    from wanda_viz.service import jobs

    def job():
        return "cpu result"

    monkeypatch.setitem(sys.modules, "spaces", None)  # not installed: import fails
    assert jobs._gpu(job) is job
    fake = types.ModuleType("spaces")
    fake.GPU = lambda duration: (lambda fn: ("zerogpu", duration, fn))
    monkeypatch.setitem(sys.modules, "spaces", fake)
    assert jobs._gpu(job) == ("zerogpu", 120, job)
