"""Tab 3, scores: magnitude, Wanda and SparseGPT score distributions of one layer, thresholds and
agreement. Named API endpoint: /scores (outputs: histograms, thresholds, agreement)."""
from __future__ import annotations

import gradio as gr

from ... import figures
from ...analysis import agreement_takeaway
from ...service import Session, get_limits, jobs
from .. import fields, texts, views
from ...errors import FieldError
from ..wiring import GPU, QUIET, Context, listen, need_calibration, pick, readable

__all__ = ["TITLE", "ID", "build", "wire", "refresh", "check_scores", "on_scores", "on_render",
           "on_layers"]

TITLE, ID = "3. Scores", "scores"
REFRESH_ON = ("session",)
OUTPUTS = ("takeaway", "histograms", "thresholds", "agreement")


def build(limits) -> dict:
    gr.Markdown(texts.SCORES_TAB)
    c = {}
    with gr.Row():
        c["layer"] = fields.Dropdown([], label="Layer (opens on the most uneven input norms)",
                                     scale=3, allow_custom_value=True)
        c["sparsity"] = fields.Slider(0.05, 0.95, value=0.5, step=0.05, label="Sparsity", scale=2)
        c["analyse"] = gr.Button("Analyse layer", variant="primary", scale=1)
    c["takeaway"] = gr.Markdown(views.empty_message("layer scores"))
    c["agreement"] = gr.Dataframe(label="Agreement between methods", interactive=False,
                                  wrap=True)
    c["histograms"] = gr.Plot(label="Score distributions with thresholds", show_label=False)
    with gr.Accordion("Thresholds and protocol", open=False):
        c["thresholds"] = gr.Dataframe(label="Thresholds", interactive=False)
        gr.Markdown(texts.SCORES_PROTOCOL)
    return c


def _outputs(ctx: Context) -> dict:
    return {"session": ctx.session, **pick(ctx.tabs[ID], *OUTPUTS)}


def wire(ctx: Context) -> None:
    c = ctx.tabs[ID]
    ctx.events["scores"].append(
        listen(c["analyse"].click, on_scores, [ctx.session], _outputs(ctx), api_name="scores",
               **GPU, inputs_kwargs=pick(c, "layer", "sparsity"), check=check_scores))


def refresh(ctx: Context, trigger):
    """After a prune: pick the first layer and analyse it on the new windows."""
    c = ctx.tabs[ID]
    event = listen(trigger, on_layers, [ctx.session], pick(c, "layer"), **QUIET)
    return listen(event.then, on_scores, [ctx.session], _outputs(ctx), api_visibility="private",
                  **GPU, inputs_kwargs=pick(c, "layer", "sparsity"), check=check_scores)


def on_layers(session: Session) -> dict:
    """The layer picker, set to the layer with the most uneven input-channel norms."""
    return {"layer": gr.Dropdown(choices=views.layer_choices(session),
                                 value=views.default_layer(session))}


def check_scores(session: Session, *, layer: str, sparsity: float) -> None:
    """Refuse a /scores request before the queue: no prune yet, no layer."""
    need_calibration(session)
    if not layer:
        raise FieldError("layer", "choose a layer")


@readable
def on_scores(session: Session, progress=gr.Progress(track_tqdm=True), *,
              layer: str, sparsity: float) -> dict:
    """Magnitude / Wanda / SparseGPT scores of one layer of the dense model."""
    check_scores(session, layer=layer, sparsity=sparsity)
    session.scores = jobs.scores_job(session.model, session.calib_ids, layer, float(sparsity),
                                     calibration=session.calibration, limits=get_limits())
    return {"session": session, **on_render(session)}


def on_render(session: Session) -> dict:
    """Histograms with thresholds, the thresholds table and the agreement table."""
    report = session.scores
    if report is None:
        return {**dict.fromkeys(OUTPUTS), "takeaway": views.empty_message("layer scores")}
    return {"takeaway": agreement_takeaway(report),
            "histograms": figures.plot_score_histograms(report),
            "thresholds": views.thresholds_table(report),
            "agreement": views.agreement_table(report)}
