"""Tab 4, masks: per-row vs per-layer comparison of the Wanda scores of tab 3, and the
comparison-group ablation. Named API endpoint: /ablation (outputs: figure, table)."""
from __future__ import annotations

import gradio as gr

from ... import figures
from ...analysis import compare_group_masks
from ...service import Session, get_limits, jobs
from .. import fields, texts, views
from ..wiring import LONG, QUIET, Context, listen, need_calibration, pick, readable

__all__ = ["TITLE", "ID", "build", "wire", "refresh", "on_render", "on_ablation"]

TITLE, ID = "4. Masks: per-row vs per-layer", "masks"
REFRESH_ON = ("session", "scores")
OUTPUTS = ("row_sparsity", "categories", "text")


def build(limits) -> dict:
    gr.Markdown(texts.MASKS_TAB)
    c = {"text": gr.Markdown(views.empty_message("layer scores (tab 3)"))}
    with gr.Row():
        c["row_sparsity"] = gr.Plot(label="Per-row sparsity under one per-layer threshold")
        c["categories"] = gr.Plot(label="Kept / pruned map")
    with gr.Row():
        c["sparsity"] = fields.Slider(0.1, 0.9, value=0.5, step=0.1, label="Ablation sparsity")
        c["ablate"] = gr.Button("Run the comparison-group ablation")
    c["ablation_fig"] = gr.Plot(label="Perplexity per comparison group")
    c["ablation"] = gr.Dataframe(label="Perplexity cost", interactive=False)
    return c


def wire(ctx: Context) -> None:
    c = ctx.tabs[ID]
    listen(c["ablate"].click, on_ablation, [ctx.session],
           {"session": ctx.session, **pick(c, "ablation_fig", "ablation")}, api_name="ablation",
           inputs_kwargs={"sparsity": c["sparsity"]}, **LONG)


def refresh(ctx: Context, trigger):
    """After new scores (tab 3, or a prune): redraw the row vs layer comparison."""
    return listen(trigger, on_render, [ctx.session], pick(ctx.tabs[ID], *OUTPUTS), **QUIET)


def on_render(session: Session) -> dict:
    """Row-sparsity histogram, kept/pruned map and the disagreement text, from the Wanda scores."""
    report = session.scores
    if report is None or "wanda" not in report.scores:
        return {"row_sparsity": None, "categories": None,
                "text": views.empty_message("layer scores (tab 3)")}
    comparison = compare_group_masks(report.scores["wanda"], report.sparsity)
    return {"row_sparsity": figures.plot_row_sparsity(comparison, layer=report.layer),
            "categories": figures.plot_mask_categories(comparison, layer=report.layer),
            "text": views.mask_markdown(report, comparison)}


@readable
def on_ablation(session: Session, progress=gr.Progress(track_tqdm=True), *,
                sparsity: float) -> dict:
    """Perplexity of Wanda and magnitude under each comparison group (the paper's ablation)."""
    need_calibration(session)
    if session.eval_spec is None or session.eval_spec.source is None:
        raise gr.Error("the ablation needs an evaluation text: choose one in tab 1 and prune")
    session.ablation = jobs.ablation_job(session.model, session.calib_ids, session.eval_spec,
                                         float(sparsity), limits=get_limits(),
                                         calibration=session.calibration)
    protocol = views.ablation_protocol(session)
    return {"session": session,
            "ablation_fig": figures.plot_group_ablation(session.ablation, protocol=protocol),
            "ablation": session.ablation.round(4)}
