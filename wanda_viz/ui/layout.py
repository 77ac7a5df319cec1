"""Components, tabs and wiring of the dashboard (no computation here; see handlers.py).

Model work (prune, outliers, scores, ablation, sweep, generate) shares one queue:
``concurrency_limit=1, concurrency_id="gpu"``; redraws from the session state run outside it.
Named API endpoints: /prune, /preset, /outliers, /scores, /ablation, /sweep, /generate.
"""
from __future__ import annotations

import gradio as gr

from . import handlers as h
from . import inputs, texts
from .engine import PRESETS, Session
from .settings import (DEFAULT_EVAL_WINDOWS, DEFAULT_SAMPLES, DEFAULT_SEQ_LEN, REAL_MODEL, Limits,
                       default_model_choice, get_limits, model_choices)

__all__ = ["build_demo"]

GPU = {"concurrency_limit": 1, "concurrency_id": "gpu"}
QUIET = {"api_visibility": "private", "queue": False}  # cheap redraws from gr.State
SWEEP_SPARSITIES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
DIFF_COLORS = {"differs": "#EE6677", "after divergence": "#F4C2C8"}
OUTLIER_COLORS = {"massive activation": "#AA3377", "top-k activation": "#CCBB44"}


def _model_tab(limits: Limits) -> dict:
    gr.Markdown(texts.MODEL_TAB)
    c = {}
    with gr.Row():
        with gr.Column():
            c["model_choice"] = gr.Dropdown(
                model_choices(), value=default_model_choice(), allow_custom_value=True,
                label="Model", info=f"{REAL_MODEL}: SmolLM2-135M-Instruct from its Q4_1 GGUF, "
                "dequantized (4-bit grid: magnitude scores tie); embedded demo model: instant; "
                "or a hub id (loaded on request)"
                + (", a local folder or .gguf file" if limits.allow_local else ""))
            with gr.Row():
                c["device"] = gr.Radio(["auto", "cpu", "cuda"], value="auto", label="Device")
                c["dtype"] = gr.Dropdown(["auto", "float32", "bfloat16", "float16"], value="auto",
                                         label="dtype", info="auto: fp32 on CPU, bf16/fp16 on GPU")
            c["calib_source"] = gr.Dropdown(inputs.calibration_choices(),
                                            value=inputs.default_calibration(),
                                            label="Calibration text")
            c["calib_text"] = gr.Textbox("", label="Pasted calibration text", lines=3,
                                         placeholder=f"used when the source is '{inputs.PASTE}'")
            c["calib_file"] = gr.File(label="Calibration .txt upload", file_types=[".txt"],
                                      type="filepath", height=90)
            with gr.Row():
                c["n_samples"] = gr.Slider(1, limits.max_samples,
                                           value=min(DEFAULT_SAMPLES, limits.max_samples),
                                           step=1, label="n_samples (windows)")
                c["seq_len"] = gr.Slider(16, limits.max_seq_len, step=16,
                                         value=min(DEFAULT_SEQ_LEN, limits.max_seq_len),
                                         label="seq_len (tokens)")
                c["seed"] = gr.Number(0, precision=0, label="seed")
            with gr.Row():
                c["eval_source"] = gr.Dropdown(inputs.eval_choices(), value=inputs.default_eval(),
                                               label="Perplexity text",
                                               info="wikitext2 = raw test split (reference); "
                                               "bundled-* ship with the app (offline)")
                c["eval_windows"] = gr.Slider(1, limits.max_eval_windows, step=1,
                                              value=min(DEFAULT_EVAL_WINDOWS,
                                                        limits.max_eval_windows),
                                              label="evaluation windows (seq_len each)")
        with gr.Column():
            c["method"] = gr.Radio(["magnitude", "wanda", "sparsegpt"], value="wanda",
                                   label="Method")
            c["sparsity"] = gr.Slider(0.0, 0.95, value=0.5, step=0.05, label="Sparsity")
            with gr.Row():
                c["structure"] = gr.Radio(["unstructured", "2:4", "4:8"], value="unstructured",
                                          label="Structure", info="N:M needs sparsity N/M")
                c["group"] = gr.Dropdown(["default", "row", "layer", "input"], value="default",
                                         label="Comparison group",
                                         info="default: per-row for Wanda, per-layer for magnitude")
            c["prune"] = gr.Button("Prune", variant="primary")
            c["preset"] = gr.Dropdown(list(PRESETS), value=list(PRESETS)[0], label="Preset")
            c["run_preset"] = gr.Button("Run preset")
    c["summary"] = gr.Markdown(h.views.empty_message("results"), label="Summary and protocol")
    c["runs"] = gr.Dataframe(label="Runs of this session", interactive=False)
    c["sparsity_fig"] = gr.Plot(label="Achieved sparsity per layer (latest run)")
    return c


def _outliers_tab() -> dict:
    gr.Markdown(texts.OUTLIERS_TAB)
    c = {"recompute": gr.Button("Recompute on this session's windows"),
         "protocol": gr.Markdown(h.views.empty_message("activation report"), label="Protocol")}
    with gr.Row():
        c["magnitudes"] = gr.Plot(label="Top-1/2/3 vs median")
        c["heatmap"] = gr.Plot(label="Layers x channels")
    c["layer_table"] = gr.Dataframe(label="Per layer: top-1/2/3 |h| and median", interactive=False)
    with gr.Row():
        c["features"] = gr.Dataframe(label="LLM.int8 outlier features", interactive=False)
        c["massive"] = gr.Dataframe(label="Massive activations", interactive=False)
    c["tokens"] = gr.HighlightedText(label="Where they occur: the window with the largest |h|",
                                     color_map=OUTLIER_COLORS, show_legend=True)
    c["norm_layer"] = gr.Dropdown([], label="Layer for the input-norm plot",
                                    allow_custom_value=True)
    c["norms"] = gr.Plot(label="Input-channel norms (Wanda statistic)")
    return c


def _scores_tab() -> dict:
    gr.Markdown(texts.SCORES_TAB)
    c = {}
    with gr.Row():
        c["layer"] = gr.Dropdown([], label="Layer", scale=3, allow_custom_value=True)
        c["sparsity"] = gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="Sparsity", scale=2)
        c["analyse"] = gr.Button("Analyse layer", variant="primary", scale=1)
    c["histograms"] = gr.Plot(label="Score distributions with thresholds")
    with gr.Row():
        c["thresholds"] = gr.Dataframe(label="Thresholds", interactive=False)
        c["agreement"] = gr.Dataframe(label="Agreement between methods", interactive=False)
    return c


def _masks_tab() -> dict:
    gr.Markdown(texts.MASKS_TAB)
    c = {"text": gr.Markdown(h.views.empty_message("layer scores (tab 3)"))}
    with gr.Row():
        c["row_sparsity"] = gr.Plot(label="Per-row sparsity under one per-layer threshold")
        c["categories"] = gr.Plot(label="Kept / pruned map")
    with gr.Row():
        c["sparsity"] = gr.Slider(0.1, 0.9, value=0.5, step=0.1, label="Ablation sparsity")
        c["ablate"] = gr.Button("Run the comparison-group ablation")
    c["ablation_fig"] = gr.Plot(label="Perplexity per comparison group")
    c["ablation"] = gr.Dataframe(label="Perplexity cost", interactive=False)
    return c


def _sweep_tab() -> dict:
    gr.Markdown(texts.SWEEP_TAB)
    c = {}
    with gr.Row():
        c["methods"] = gr.CheckboxGroup(["magnitude", "wanda", "sparsegpt"],
                                        value=["magnitude", "wanda", "sparsegpt"], label="Methods")
        c["sparsities"] = gr.CheckboxGroup(SWEEP_SPARSITIES, value=[0.5], label="Sparsities")
        c["structures"] = gr.CheckboxGroup(["unstructured", "2:4", "4:8"],
                                           value=["unstructured"], label="Structures")
    c["run"] = gr.Button("Run or extend the sweep", variant="primary")
    c["plot"] = gr.Plot(label="Perplexity vs sparsity")
    c["table"] = gr.Dataframe(label="Sweep points", interactive=False)
    c["protocol"] = gr.Markdown(label="Protocol")
    c["files"] = gr.File(label="Download CSV / JSON / HTML", file_count="multiple")
    return c


def _generate_tab(limits: Limits) -> dict:
    gr.Markdown(texts.GENERATE_TAB)
    c = {}
    with gr.Row():
        c["prompt"] = gr.Textbox("Alice was beginning to get very tired", label="Prompt", scale=3)
        c["run"] = gr.Dropdown([], label="Pruned run", scale=2, allow_custom_value=True)
    with gr.Row():
        c["max_new_tokens"] = gr.Slider(1, limits.max_new_tokens, step=1,
                                        value=min(40, limits.max_new_tokens),
                                        label="max new tokens")
        c["do_sample"] = gr.Checkbox(False, label="sample (else greedy)")
        c["temperature"] = gr.Slider(0.1, 2.0, value=1.0, step=0.1, label="temperature")
        c["top_p"] = gr.Slider(0.1, 1.0, value=1.0, step=0.05, label="top-p")
        c["seed"] = gr.Number(0, precision=0, label="seed")
    c["generate"] = gr.Button("Generate", variant="primary")
    with gr.Row():
        c["dense"] = gr.HighlightedText(label="Dense", color_map=DIFF_COLORS)
        c["pruned"] = gr.HighlightedText(label="Pruned", color_map=DIFF_COLORS, show_legend=True)
    c["table"] = gr.Dataframe(label="Same decoding settings: tokens/s, first divergence",
                              interactive=False)
    c["probs"] = gr.Plot(label="Probability of each generated token")
    return c


def _pick(c: dict, *names: str) -> dict:
    return {name: c[name] for name in names}


_SETUP = ("model_choice", "device", "dtype", "calib_source", "calib_text", "calib_file",
          "n_samples", "seq_len", "seed", "eval_source", "eval_windows")


def _wire(session: gr.State, m: dict, o: dict, s: dict, k: dict, w: dict, g: dict) -> None:
    outliers_out = [o["magnitudes"], o["heatmap"], o["layer_table"], o["features"], o["massive"],
                    o["tokens"], o["protocol"]]
    scores_out = [s["histograms"], s["thresholds"], s["agreement"]]
    masks_out = [k["row_sparsity"], k["categories"], k["text"]]
    prune_out = [session, m["summary"], m["runs"], m["sparsity_fig"]]
    setup = _pick(m, *_SETUP)
    for event in (
        m["prune"].click(h.on_prune, [session], prune_out, api_name="prune", **GPU,
                         inputs_kwargs={**setup, **_pick(m, "method", "sparsity", "structure",
                                                         "group")}),
        m["run_preset"].click(h.on_preset, [session], prune_out, api_name="preset", **GPU,
                              inputs_kwargs={**setup, "preset": m["preset"]}),
    ):
        (event.success(h.on_render_selectors, [session], [g["run"], s["layer"], o["norm_layer"]],
                       **QUIET)
         .then(h.on_render_outliers, [session], outliers_out, **QUIET)
         .then(h.on_input_norms, [session, o["norm_layer"]], [o["norms"]], **QUIET)
         .then(h.on_scores, [session], [session, *scores_out], api_visibility="private", **GPU,
               inputs_kwargs=_pick(s, "layer", "sparsity"))
         .then(h.on_render_masks, [session], masks_out, **QUIET))
    o["recompute"].click(h.on_outliers, [session], [session, *outliers_out], api_name="outliers",
                         **GPU).success(h.on_input_norms, [session, o["norm_layer"]], [o["norms"]],
                                        **QUIET)
    o["norm_layer"].change(h.on_input_norms, [session, o["norm_layer"]], [o["norms"]], **QUIET)
    s["analyse"].click(h.on_scores, [session], [session, *scores_out], api_name="scores", **GPU,
                       inputs_kwargs=_pick(s, "layer", "sparsity")
                       ).success(h.on_render_masks, [session], masks_out, **QUIET)
    k["ablate"].click(h.on_ablation, [session], [session, k["ablation_fig"], k["ablation"]],
                      api_name="ablation", inputs_kwargs={"sparsity": k["sparsity"]}, **GPU)
    w["run"].click(h.on_sweep, [session],
                   [session, w["plot"], w["table"], w["protocol"], w["files"]],
                   api_name="sweep", inputs_kwargs=_pick(w, "methods", "sparsities", "structures"),
                   **GPU)
    g["generate"].click(h.on_generate, [session],
                        [session, g["dense"], g["pruned"], g["table"], g["probs"]],
                        api_name="generate", **GPU,
                        inputs_kwargs=_pick(g, "prompt", "run", "max_new_tokens", "do_sample",
                                            "temperature", "top_p", "seed"))


def build_demo() -> gr.Blocks:
    """The dashboard as a ``gr.Blocks``; builds components only, loads no model."""
    limits = get_limits()
    # delete_cache: Gradio's copies of downloads older than 2 h are removed every hour
    with gr.Blocks(title="wanda-viz: why pruning works", delete_cache=(3600, 7200)) as demo:
        session = gr.State(Session(), time_to_live=3 * 3600)  # deep-copied per browser session
        gr.Markdown(texts.INTRO)
        with gr.Tabs():
            with gr.Tab("1. Model and data", id="model"):
                m = _model_tab(limits)
            with gr.Tab("2. Outlier features", id="outliers"):
                o = _outliers_tab()
            with gr.Tab("3. Scores", id="scores"):
                s = _scores_tab()
            with gr.Tab("4. Masks: per-row vs per-layer", id="masks"):
                k = _masks_tab()
            with gr.Tab("5. Perplexity vs sparsity", id="sweep"):
                w = _sweep_tab()
            with gr.Tab("6. Generate", id="generate"):
                g = _generate_tab(limits)
        _wire(session, m, o, s, k, w, g)
    return demo
