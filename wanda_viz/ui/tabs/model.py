"""Tab 1, prune and compare: the first click prunes with magnitude and Wanda on the same windows.

The primary action (/compare) prunes the default model with magnitude and Wanda (SparseGPT on
request) at one sparsity, evaluates each against dense, and answers with one sentence of numbers,
a perplexity bar chart with the dense line and the runs table ("x dense"). Pruning with one method
(/prune, with OWL) and the presets (/preset) are one accordion away. The per-layer sparsity map
shows only where sparsity varies from layer to layer (OWL).
Named API endpoints: /compare, /prune, /preset (outputs: takeaway, protocol, runs table,
perplexity figure, per-layer sparsity figure).
"""
from __future__ import annotations

import gradio as gr

from ... import figures
from ...config import PruneConfig
from ...pruning.registry import GROUPS, METHOD_NAMES, STRUCTURES
from ...service import (COMPARE_METHODS, DEFAULT_EVAL_WINDOWS, DEFAULT_SAMPLES, DEFAULT_SEQ_LEN,
                        PRESETS, Limits, Session, default_model_choice, device_choices, jobs,
                        model_choices, model_note)
from .. import fields, inputs, texts, views
from ...cancel import CancelToken
from ...errors import FieldError
from ..wiring import GPU, Context, listen, pick, readable, wire_cancel

__all__ = ["TITLE", "ID", "SETUP", "COMPARE_BUTTON", "build", "wire", "on_compare", "on_prune",
           "on_preset", "on_render"]

TITLE, ID = "1. Prune and compare", "model"
COMPARE_BUTTON = "Prune: magnitude vs Wanda"
SETUP = ("model_choice", "device", "dtype", "calib_source", "calib_text", "calib_file",
         "n_samples", "seq_len", "seed", "eval_source", "eval_windows")
OUTPUTS = ("takeaway", "summary", "runs", "ppl_fig", "sparsity_fig")


def _model_inputs(c: dict, limits: Limits) -> None:
    with gr.Row():
        c["model_choice"] = fields.Dropdown(
            model_choices(limits), value=default_model_choice(), allow_custom_value=True,
            label="Model", scale=3, info="a listed model or a hub id (loaded on request)"
            + (", a local folder or .gguf file" if limits.allow_local else ""))
        c["device"] = fields.Radio(device_choices(), value="auto", label="Device", scale=1)
        c["dtype"] = fields.Dropdown(["auto", "float32", "bfloat16", "float16"], value="auto",
                                 label="dtype", scale=1, info="auto: fp32 on CPU, bf16 on GPU")
    c["model_note"] = gr.Markdown(model_note())


def _data_inputs(c: dict, limits: Limits) -> None:
    c["calib_source"] = fields.Dropdown(inputs.calibration_choices(),
                                    value=inputs.default_calibration(), label="Calibration text")
    with gr.Row():
        c["calib_text"] = gr.Textbox("", label="Pasted calibration text", lines=2,
                                     placeholder=f"used when the source is '{inputs.PASTE}'")
        c["calib_file"] = gr.File(label="Calibration .txt upload", file_types=[".txt"],
                                  type="filepath", height=90)
    with gr.Row():
        c["n_samples"] = fields.IntSlider(1, limits.max_samples, step=1,
                                          value=min(DEFAULT_SAMPLES, limits.max_samples),
                                          label="calibration windows")
        c["seq_len"] = fields.IntSlider(16, limits.max_seq_len, step=16,
                                        value=min(DEFAULT_SEQ_LEN, limits.max_seq_len),
                                        label="tokens per window (seq_len)")
        c["seed"] = fields.IntNumber(0, precision=0, minimum=0, label="seed")
    with gr.Row():
        c["eval_source"] = fields.Dropdown(inputs.eval_choices(), value=inputs.default_eval(),
                                       label="Perplexity text",
                                       info="wikitext2 = raw test split (reference); "
                                       "bundled-* ship with the app (offline)")
        c["eval_windows"] = fields.IntSlider(
            1, limits.max_eval_windows, step=1,
            value=min(DEFAULT_EVAL_WINDOWS, limits.max_eval_windows),
            label="perplexity windows (seq_len each)")


def _compare_inputs(c: dict) -> None:
    with gr.Row(equal_height=True):
        c["sparsity"] = fields.Slider(0.0, 0.95, value=0.5, step=0.05, label="Sparsity",
                                      scale=2)
        c["structure"] = fields.Radio(list(STRUCTURES), value="unstructured", label="Structure",
                                      info="N:M needs sparsity N/M", scale=2)
        c["with_sparsegpt"] = fields.Checkbox(False, label="also SparseGPT (slower)", scale=1)
        c["compare"] = gr.Button(COMPARE_BUTTON, variant="primary", scale=2, size="lg")
        c["cancel"] = gr.Button("Cancel", variant="stop", scale=0, min_width=110, size="lg")
    c["status"] = gr.Markdown()
    c["first_click"] = gr.Markdown(texts.FIRST_CLICK)


def _single_inputs(c: dict) -> None:
    with gr.Row():
        c["method"] = fields.Radio(list(METHOD_NAMES), value="wanda", label="Method")
        c["group"] = fields.Dropdown(["default", *GROUPS], value="default",
                                     label="Comparison group",
                                     info="default: per-row for Wanda, per-layer for magnitude")
        c["owl"] = fields.Checkbox(False, label="OWL (outlier-weighted sparsity per block)",
                                   info="unstructured only; the per-layer map shows it")
    c["prune"] = gr.Button("Prune with one method")
    with gr.Row():
        c["preset"] = fields.Dropdown(list(PRESETS), value=list(PRESETS)[0], label="Preset",
                                      scale=3)
        c["run_preset"] = gr.Button("Run preset", scale=1)


def build(limits: Limits) -> dict:
    gr.Markdown(texts.MODEL_TAB)
    with gr.Accordion("Methods and papers", open=False):
        gr.Markdown(texts.method_notes())
    c = {}
    _model_inputs(c, limits)
    _compare_inputs(c)
    c["takeaway"] = gr.Markdown(views.empty_message("results"), elem_classes="takeaway")
    c["ppl_fig"] = gr.Plot(label="Perplexity after pruning", show_label=False)
    c["runs"] = gr.Dataframe(label="Runs of this session", interactive=False, wrap=True,
                             elem_classes="readable-table",
                             column_widths=["19%", "14%", "10%", "13%", "14%", "13%", "17%"])
    c["sparsity_fig"] = gr.Plot(label="Achieved sparsity per block and layer type",
                                visible=False)
    with gr.Accordion("Protocol: model, calibration, perplexity, timing", open=False):
        c["summary"] = gr.Markdown(views.empty_message("results"))
    with gr.Accordion("Calibration and perplexity data", open=False):
        _data_inputs(c, limits)
    with gr.Accordion("One method (any comparison group, OWL), or a preset", open=False):
        _single_inputs(c)
    return c


def wire(ctx: Context) -> None:
    c = ctx.tabs[ID]
    outputs = {"session": ctx.session, **pick(c, *OUTPUTS)}
    setup = pick(c, *SETUP)
    events = [  # one Cancel button stops whichever of the three runs (job "prune")
        listen(c["compare"].click, on_compare, [ctx.session], outputs, api_name="compare",
               **GPU, inputs_kwargs={**setup, **pick(c, "sparsity", "structure",
                                                     "with_sparsegpt")},
               check=check_compare, long_job="prune"),
        listen(c["prune"].click, on_prune, [ctx.session], outputs, api_name="prune", **GPU,
               inputs_kwargs={**setup, **pick(c, "method", "sparsity", "structure", "group",
                                              "owl")},
               check=check_prune, long_job="prune"),
        listen(c["run_preset"].click, on_preset, [ctx.session], outputs, api_name="preset",
               **GPU, inputs_kwargs={**setup, "preset": c["preset"]}, check=check_preset,
               long_job="prune"),
    ]
    ctx.events["session"] += events
    wire_cancel(c["cancel"], events, "prune", c["status"])


def _configs(methods, *, sparsity: float, structure: str, **fields_) -> list[PruneConfig]:
    try:
        return [PruneConfig(method=m, sparsity=float(sparsity), structure=structure, **fields_)
                for m in methods]
    except ValueError as err:  # e.g. N:M with another sparsity than N/M
        raise FieldError("sparsity", str(err)) from err


def check_prune(session: Session, *, method: str, sparsity: float, structure: str, group: str,
                owl: bool = False, **setup) -> tuple[list[PruneConfig], tuple]:
    """(configs, specs) of a /prune request, or the error of its first bad value (also run by
    the event's validator, before the queue)."""
    configs = _configs([method], sparsity=sparsity, structure=structure, owl=bool(owl),
                       group=None if group in (None, "", "default") else group)
    return configs, inputs.build_specs(**setup)


def check_compare(session: Session, *, sparsity: float, structure: str,
                  with_sparsegpt: bool = False, **setup) -> tuple[list[PruneConfig], tuple]:
    """(configs, specs) of a /compare request: magnitude and Wanda (and SparseGPT)."""
    methods = (*COMPARE_METHODS, *(("sparsegpt",) if with_sparsegpt else ()))
    return _configs(methods, sparsity=sparsity, structure=structure), inputs.build_specs(**setup)


def check_preset(session: Session, *, preset: str, **setup) -> tuple[list[PruneConfig], tuple]:
    """(configs, specs) of a /preset request, or the error of its first bad value."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    return list(PRESETS[preset]), inputs.build_specs(**setup)


def _run(session: Session, configs, specs: tuple, cancel: CancelToken | None = None) -> dict:
    spec, calib, evaluation, limits = specs
    same_windows = (session.model, session.calib_spec) == (spec, calib)
    same_dense = same_windows and session.eval_spec == evaluation and session.eval_protocol
    new = jobs.prune_job(spec, calib, tuple(configs), evaluation, limits=limits,
                         with_dense=not same_dense,
                         with_report=not (same_windows and session.report is not None),
                         cancel=cancel)
    merged = session.merge(new, limits.max_runs)
    return {"session": merged, **on_render(merged, [c.label() for c in configs])}


@readable
def on_compare(session: Session, progress=gr.Progress(track_tqdm=True),
               *, cancel: CancelToken | None = None, **values) -> dict:
    """Magnitude and Wanda (and SparseGPT) at one sparsity on the same windows, against dense.

    ``values``: the setup (``SETUP``) and sparsity, structure, with_sparsegpt."""
    return _run(session, *check_compare(session, **values), cancel)


@readable
def on_prune(session: Session, progress=gr.Progress(track_tqdm=True),
             *, cancel: CancelToken | None = None, **values) -> dict:
    """Prune once; the run joins the session's runs (same setup) or replaces them.

    ``values``: the setup (``SETUP``) and method, sparsity, structure, group, owl."""
    return _run(session, *check_prune(session, **values), cancel)


@readable
def on_preset(session: Session, progress=gr.Progress(track_tqdm=True),
              *, cancel: CancelToken | None = None, **values) -> dict:
    """Run one of PRESETS (several methods on the same calibration windows) in one click.

    ``values``: the setup (``SETUP``) and preset."""
    return _run(session, *check_preset(session, **values), cancel)


def _sparsity_map(session: Session, labels: list[str]):
    """The per-layer map of the action's first run whose sparsity varies by layer (OWL)."""
    for label in labels:
        result = session.runs[label].result
        values = list(result.layer_sparsity.values())
        if values and max(values) - min(values) > 1e-6:
            return gr.Plot(figures.plot_sparsity_grid(result), visible=True)
    return gr.Plot(None, visible=False)


def on_render(session: Session, labels: list[str] | None = None) -> dict:
    """Takeaway, protocol, runs table, perplexity bars and (where it varies) the sparsity map of
    the action that made the runs ``labels`` (default: the latest run)."""
    labels = [l for l in (labels or list(session.runs)[-1:]) if l in session.runs]
    frame = views.comparison_frame(session, labels)
    ppl_fig = figures.plot_perplexity_bars(frame, session.dense_perplexity,
                                           protocol=session.eval_protocol or "") \
        if len(frame) else None
    return {"takeaway": views.comparison_markdown(session, labels),
            "summary": views.summary_markdown(session), "runs": views.runs_table(session),
            "ppl_fig": ppl_fig, "sparsity_fig": _sparsity_map(session, labels)}
