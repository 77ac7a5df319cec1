"""Tab 2, outlier features: residual-stream magnitudes, LLM.int8 features, massive activations.

Named API endpoint: /outliers (outputs: magnitudes plot, heatmap, layer table, outlier features,
massive activations, highlighted tokens, protocol).
"""
from __future__ import annotations

import gradio as gr

from ... import figures
from ...analysis import input_norm_takeaway, outlier_takeaway
from ...service import Session, get_limits, jobs
from .. import texts, views
from ..wiring import GPU, QUIET, Context, listen, need_calibration, pick, readable

__all__ = ["TITLE", "ID", "build", "wire", "refresh", "on_outliers", "on_render",
           "on_input_norms"]

TITLE, ID = "2. Outlier features", "outliers"
REFRESH_ON = ("session",)
OUTPUTS = ("takeaway", "magnitudes", "heatmap", "layer_table", "features", "massive", "tokens",
           "protocol")
OUTLIER_COLORS = {"massive activation": "#AA3377", "top-k activation": "#CCBB44"}


def build(limits) -> dict:
    gr.Markdown(texts.OUTLIERS_TAB)
    c = {"takeaway": gr.Markdown(views.empty_message("activation report"))}
    c["magnitudes"] = gr.Plot(label="Top-1/2/3 vs median", show_label=False)
    c["massive"] = gr.Dataframe(label="Massive activations (largest first)", interactive=False,
                                max_height=300, wrap=True)
    c["heatmap"] = gr.Plot(label="Blocks x channels", show_label=False)
    c["tokens"] = gr.HighlightedText(label="Where they occur: the window with the largest |h|",
                                     color_map=OUTLIER_COLORS, show_legend=True)
    gr.Markdown("### Wanda's statistic: the input-channel norms of one layer")
    c["norm_layer"] = gr.Dropdown([], label="Layer (opens on the most uneven one)",
                                  allow_custom_value=True)
    c["norm_takeaway"] = gr.Markdown()
    c["norms"] = gr.Plot(label="Input-channel norms (Wanda statistic)", show_label=False)
    with gr.Accordion("LLM.int8 outlier features and the per-block table", open=False):
        c["features"] = gr.Dataframe(label="LLM.int8 outlier features (linear-layer inputs)",
                                     interactive=False, wrap=True)
        c["layer_table"] = gr.Dataframe(label="Per block: top-1/2/3 |h| and median",
                                        interactive=False, max_height=400)
    with gr.Accordion("Protocol", open=False):
        gr.Markdown(texts.OUTLIERS_PROTOCOL)
        c["protocol"] = gr.Markdown(views.empty_message("activation report"))
    c["recompute"] = gr.Button("Recompute on this session's windows", size="sm")
    return c


def _norms(ctx: Context, trigger):
    c = ctx.tabs[ID]
    return listen(trigger, on_input_norms, [ctx.session, c["norm_layer"]],
                  pick(c, "norms", "norm_takeaway"), **QUIET)


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
                "takeaway": views.empty_message("activation report"),
                "protocol": views.empty_message("activation report")}
    layers, features, massive = views.outlier_tables(session)
    return {"takeaway": outlier_takeaway(session.report),
            "magnitudes": figures.plot_layer_magnitudes(session.report),
            "heatmap": figures.plot_residual_heatmap(session.report), "layer_table": layers,
            "features": features, "tokens": views.token_view(session),
            "massive": gr.Dataframe(massive, visible=len(massive) > 0),  # none: no empty table
            "protocol": f"**Protocol:** {session.report.protocol()}"}


def on_refresh(session: Session) -> dict:
    picker = gr.Dropdown(choices=views.layer_choices(session), value=views.default_layer(session))
    return {"norm_layer": picker, **on_render(session)}


def on_input_norms(session: Session, layer: str) -> dict:
    """Per-channel input norms (the Wanda statistic) of one prunable layer."""
    if session.report is None or not layer:
        return {"norms": None, "norm_takeaway": ""}
    if layer not in session.report.input_norms:
        raise gr.Error(f"unknown layer {layer!r}")
    return {"norms": figures.plot_input_norms(session.report, layer),
            "norm_takeaway": input_norm_takeaway(session.report, layer)}
