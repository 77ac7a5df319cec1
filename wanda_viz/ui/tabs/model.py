"""Tab 1, model and data: choose the model, calibration and evaluation, prune or run a preset.

Named API endpoints: /prune and /preset (outputs: summary, runs table, per-layer sparsity plot).
"""
from __future__ import annotations

import gradio as gr

from ... import figures
from ...config import PruneConfig
from ...pruning.registry import GROUPS, METHOD_NAMES, STRUCTURES
from ...service import (DEFAULT_EVAL_WINDOWS, DEFAULT_SAMPLES, DEFAULT_SEQ_LEN, PRESETS,
                        REAL_MODEL, Limits, Session, default_model_choice, jobs, model_choices)
from .. import fields, inputs, texts, views
from ..wiring import GPU, Context, listen, pick, readable

__all__ = ["TITLE", "ID", "SETUP", "build", "wire", "on_prune", "on_preset", "on_render"]

TITLE, ID = "1. Model and data", "model"
SETUP = ("model_choice", "device", "dtype", "calib_source", "calib_text", "calib_file",
         "n_samples", "seq_len", "seed", "eval_source", "eval_windows")
OUTPUTS = ("summary", "runs", "sparsity_fig")


def _data_inputs(c: dict, limits: Limits) -> None:
    c["calib_source"] = gr.Dropdown(inputs.calibration_choices(),
                                    value=inputs.default_calibration(), label="Calibration text")
    c["calib_text"] = gr.Textbox("", label="Pasted calibration text", lines=3,
                                 placeholder=f"used when the source is '{inputs.PASTE}'")
    c["calib_file"] = gr.File(label="Calibration .txt upload", file_types=[".txt"],
                              type="filepath", height=90)
    with gr.Row():
        c["n_samples"] = fields.IntSlider(1, limits.max_samples, step=1,
                                          value=min(DEFAULT_SAMPLES, limits.max_samples),
                                          label="n_samples (windows)")
        c["seq_len"] = fields.IntSlider(16, limits.max_seq_len, step=16,
                                        value=min(DEFAULT_SEQ_LEN, limits.max_seq_len),
                                        label="seq_len (tokens)")
        c["seed"] = fields.IntNumber(0, precision=0, minimum=0, label="seed")
    with gr.Row():
        c["eval_source"] = gr.Dropdown(inputs.eval_choices(), value=inputs.default_eval(),
                                       label="Perplexity text",
                                       info="wikitext2 = raw test split (reference); "
                                       "bundled-* ship with the app (offline)")
        c["eval_windows"] = fields.IntSlider(
            1, limits.max_eval_windows, step=1,
            value=min(DEFAULT_EVAL_WINDOWS, limits.max_eval_windows),
            label="evaluation windows (seq_len each)")


def _method_inputs(c: dict) -> None:
    c["method"] = gr.Radio(list(METHOD_NAMES), value="wanda", label="Method")
    c["sparsity"] = fields.Slider(0.0, 0.95, value=0.5, step=0.05, label="Sparsity")
    with gr.Row():
        c["structure"] = gr.Radio(list(STRUCTURES), value="unstructured", label="Structure",
                                  info="N:M needs sparsity N/M")
        c["group"] = gr.Dropdown(["default", *GROUPS], value="default",
                                 label="Comparison group",
                                 info="default: per-row for Wanda, per-layer for magnitude")
    c["prune"] = gr.Button("Prune", variant="primary")
    c["preset"] = gr.Dropdown(list(PRESETS), value=list(PRESETS)[0], label="Preset")
    c["run_preset"] = gr.Button("Run preset")


def build(limits: Limits) -> dict:
    gr.Markdown(texts.MODEL_TAB)
    with gr.Accordion("Methods and papers", open=False):
        gr.Markdown(texts.method_notes())
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
            _data_inputs(c, limits)
        with gr.Column():
            _method_inputs(c)
    c["summary"] = gr.Markdown(views.empty_message("results"), label="Summary and protocol")
    c["runs"] = gr.Dataframe(label="Runs of this session", interactive=False)
    c["sparsity_fig"] = gr.Plot(label="Achieved sparsity per layer (latest run)")
    return c


def wire(ctx: Context) -> None:
    c = ctx.tabs[ID]
    outputs = {"session": ctx.session, **pick(c, *OUTPUTS)}
    setup = pick(c, *SETUP)
    ctx.events["session"] += [
        listen(c["prune"].click, on_prune, [ctx.session], outputs, api_name="prune", **GPU,
               inputs_kwargs={**setup, **pick(c, "method", "sparsity", "structure", "group")}),
        listen(c["run_preset"].click, on_preset, [ctx.session], outputs, api_name="preset",
               **GPU, inputs_kwargs={**setup, "preset": c["preset"]}),
    ]


def _run(session: Session, configs, setup: dict) -> dict:
    spec, calib, evaluation, limits = inputs.build_specs(**setup)
    same_windows = (session.model, session.calib_spec) == (spec, calib)
    same_dense = same_windows and session.eval_spec == evaluation and session.eval_protocol
    new = jobs.prune_job(spec, calib, tuple(configs), evaluation, limits=limits,
                         with_dense=not same_dense,
                         with_report=not (same_windows and session.report is not None))
    merged = session.merge(new, limits.max_runs)
    return {"session": merged, **on_render(merged)}


@readable
def on_prune(session: Session, progress=gr.Progress(track_tqdm=True), *,
             model_choice: str, device: str, dtype: str, calib_source: str,
             calib_text: str, calib_file, n_samples: int, seq_len: int, seed: int,
             eval_source: str, eval_windows: int, method: str, sparsity: float,
             structure: str, group: str) -> dict:
    """Prune once; the run joins the session's runs (same setup) or replaces them."""
    setup = dict(model_choice=model_choice, device=device, dtype=dtype, calib_source=calib_source,
                 calib_text=calib_text, calib_file=calib_file, n_samples=n_samples,
                 seq_len=seq_len, seed=seed, eval_source=eval_source, eval_windows=eval_windows)
    config = PruneConfig(method=method, sparsity=float(sparsity), structure=structure,
                         group=None if group in (None, "", "default") else group)
    return _run(session, [config], setup)


@readable
def on_preset(session: Session, progress=gr.Progress(track_tqdm=True), *,
              preset: str, model_choice: str, device: str, dtype: str,
              calib_source: str, calib_text: str, calib_file, n_samples: int, seq_len: int,
              seed: int, eval_source: str, eval_windows: int) -> dict:
    """Run one of PRESETS (several methods on the same calibration windows) in one click."""
    if preset not in PRESETS:
        raise gr.Error(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    setup = dict(model_choice=model_choice, device=device, dtype=dtype, calib_source=calib_source,
                 calib_text=calib_text, calib_file=calib_file, n_samples=n_samples,
                 seq_len=seq_len, seed=seed, eval_source=eval_source, eval_windows=eval_windows)
    return _run(session, PRESETS[preset], setup)


def on_render(session: Session) -> dict:
    """Summary Markdown, runs table and the per-layer sparsity figure of the latest run."""
    latest = list(session.runs.values())[-1].result if session.runs else None
    figure = figures.plot_layer_sparsity(latest) if latest is not None else None
    return {"summary": views.summary_markdown(session), "runs": views.runs_table(session),
            "sparsity_fig": figure}
