"""Tab 2, outlier features: residual-stream magnitudes, LLM.int8 features, massive activations.

Named API endpoint: /outliers (outputs: magnitudes plot, heatmap, layer table, outlier features,
massive activations, highlighted tokens, protocol).
"""
from __future__ import annotations

import gradio as gr

from ... import figures
from ...service import Session, get_limits, jobs
from .. import texts, views
from ..wiring import GPU, QUIET, Context, listen, need_calibration, pick, readable

__all__ = ["TITLE", "ID", "build", "wire", "refresh", "on_outliers", "on_render",
           "on_input_norms"]

TITLE, ID = "2. Outlier features", "outliers"
REFRESH_ON = ("session",)
OUTPUTS = ("magnitudes", "heatmap", "layer_table", "features", "massive", "tokens", "protocol")
OUTLIER_COLORS = {"massive activation": "#AA3377", "top-k activation": "#CCBB44"}


def build(limits) -> dict:
    gr.Markdown(texts.OUTLIERS_TAB)
    c = {"recompute": gr.Button("Recompute on this session's windows"),
         "protocol": gr.Markdown(views.empty_message("activation report"), label="Protocol")}
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


def _norms(ctx: Context, trigger):
    c = ctx.tabs[ID]
    return listen(trigger, on_input_norms, [ctx.session, c["norm_layer"]], pick(c, "norms"),
                  **QUIET)


def wire(ctx: Context) -> None:
    c = ctx.tabs[ID]
    event = listen(c["recompute"].click, on_outliers, [ctx.session],
                   {"session": ctx.session, **pick(c, *OUTPUTS)}, api_name="outliers", **GPU)
    _norms(ctx, event.success)
    _norms(ctx, c["norm_layer"].change)


def refresh(ctx: Context, trigger):
    """After a prune: the layer picker, every view, then the input norms of the picked layer."""
    c = ctx.tabs[ID]
    event = listen(trigger, on_refresh, [ctx.session], pick(c, "norm_layer", *OUTPUTS), **QUIET)
    return _norms(ctx, event.then)


@readable
def on_outliers(session: Session, progress=gr.Progress(track_tqdm=True)) -> dict:
    """Recompute the activation report of the dense model on the session's calibration windows."""
    need_calibration(session)
    session.report, session.report_tokens = jobs.outliers_job(
        session.model, session.calib_ids, session.calibration, limits=get_limits())
    return {"session": session, **on_render(session)}


def on_render(session: Session) -> dict:
    """Every view of the tab from the session's activation report."""
    if session.report is None:
        return {**dict.fromkeys(OUTPUTS), "tokens": [],
                "protocol": views.empty_message("activation report")}
    layers, features, massive = views.outlier_tables(session)
    return {"magnitudes": figures.plot_layer_magnitudes(session.report),
            "heatmap": figures.plot_residual_heatmap(session.report), "layer_table": layers,
            "features": features, "massive": massive, "tokens": views.token_view(session),
            "protocol": f"**Protocol:** {session.report.protocol()}"}


def on_refresh(session: Session) -> dict:
    layers = views.layer_choices(session)
    picker = gr.Dropdown(choices=layers, value=layers[0] if layers else None)
    return {"norm_layer": picker, **on_render(session)}


def on_input_norms(session: Session, layer: str) -> dict:
    """Per-channel input norms (the Wanda statistic) of one prunable layer."""
    if session.report is None or not layer:
        return {"norms": None}
    if layer not in session.report.input_norms:
        raise gr.Error(f"unknown layer {layer!r}")
    return {"norms": figures.plot_input_norms(session.report, layer)}
