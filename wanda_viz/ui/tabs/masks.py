"""Tab 4, masks: per-row vs per-layer comparison of the Wanda scores of tab 3, and the
comparison-group ablation. Named API endpoint: /ablation (outputs: figure, table)."""
from __future__ import annotations

import gradio as gr

from ... import figures
from ...analysis import ablation_takeaway, compare_group_masks
from ...service import Session, get_limits, jobs
from ...cancel import CancelToken
from ...service.estimates import ablation_estimate, session_workload
from .. import fields, tables, texts, views
from ..wiring import LONG, QUIET, Context, listen, need_calibration, pick, readable, wire_cancel

__all__ = ["TITLE", "ID", "build", "wire", "refresh", "on_render", "check_ablation",
           "on_ablation"]

TITLE, ID = "4. Masks: per-row vs per-layer", "masks"
REFRESH_ON = ("session", "scores")
OUTPUTS = ("row_sparsity", "categories", "text", "estimate")


def build(limits) -> dict:
    gr.Markdown(texts.MASKS_TAB)
    c = {"text": gr.Markdown(views.empty_message("layer scores (tab 3)"))}
    c["row_sparsity"] = gr.Plot(label="Per-row sparsity under one per-layer threshold",
                                show_label=False)
    c["categories"] = gr.Plot(label="Kept / pruned map", show_label=False)
    gr.Markdown("### The comparison-group ablation (whole model)")
    with gr.Row(equal_height=True):
        c["sparsity"] = fields.Slider(0.1, 0.9, value=0.5, step=0.1, label="Ablation sparsity")
        c["ablate"] = gr.Button("Run the comparison-group ablation", variant="primary")
        c["cancel"] = gr.Button("Cancel", variant="stop", scale=0, min_width=160)
    c["status"] = gr.Markdown()
    c["estimate"] = gr.Markdown()
    c["ablation_takeaway"] = gr.Markdown()
    c["ablation_fig"] = gr.Plot(label="Perplexity per comparison group", show_label=False)
    with gr.Accordion("Table and protocol", open=False):
        c["ablation"] = gr.Dataframe(label="Perplexity per comparison group", interactive=False)
        c["ablation_protocol"] = gr.Markdown()
    return c


def wire(ctx: Context) -> None:
    c = ctx.tabs[ID]
    event = listen(c["ablate"].click, on_ablation, [ctx.session],
                   {"session": ctx.session, **pick(c, "ablation_fig", "ablation",
                                                   "ablation_takeaway", "ablation_protocol")},
                   api_name="ablation", inputs_kwargs={"sparsity": c["sparsity"]},
                   check=check_ablation, long_job="ablation", **LONG)
    wire_cancel(c["cancel"], event, "ablation", c["status"])


def refresh(ctx: Context, trigger):
    """After new scores (tab 3, or a prune): redraw the row vs layer comparison."""
    return listen(trigger, on_render, [ctx.session], pick(ctx.tabs[ID], *OUTPUTS), **QUIET)


def on_render(session: Session) -> dict:
    """Row-sparsity histogram, kept/pruned map and the disagreement text, from the Wanda scores."""
    work = session_workload(session)
    estimate = ablation_estimate(work) if work is not None else ""
    report = session.scores
    if report is None or "wanda" not in report.scores:
        return {"row_sparsity": None, "categories": None, "estimate": estimate,
                "text": views.empty_message("layer scores (tab 3)")}
    comparison = compare_group_masks(report.scores["wanda"], report.sparsity)
    return {"row_sparsity": figures.plot_row_sparsity(comparison, layer=report.layer),
            "categories": figures.plot_mask_categories(comparison, layer=report.layer),
            "text": views.mask_markdown(report, comparison), "estimate": estimate}


def check_ablation(session: Session, *, sparsity: float) -> None:
    """Refuse an /ablation request before the queue: no prune, no evaluation text."""
    need_calibration(session)
    if session.eval_spec is None or session.eval_spec.source is None:
        raise gr.Error("the ablation needs an evaluation text: choose one in tab 1 and prune")


@readable
def on_ablation(session: Session, progress=gr.Progress(track_tqdm=True), *,
                sparsity: float, cancel: CancelToken | None = None) -> dict:
    """Perplexity of Wanda and magnitude under each comparison group (the paper's ablation);
    ``cancel`` stops it between points and inside a point at block boundaries."""
    check_ablation(session, sparsity=sparsity)
    session.ablation = jobs.ablation_job(session.model, session.calib_ids, session.eval_spec,
                                         float(sparsity), limits=get_limits(),
                                         calibration=session.calibration, cancel=cancel)
    protocol = views.ablation_protocol(session)
    return {"session": session,
            "ablation_fig": figures.plot_group_ablation(session.ablation, protocol=protocol),
            "ablation": tables.readable_table(session.ablation, tables.ABLATION),
            "ablation_takeaway": ablation_takeaway(session.ablation),
            "ablation_protocol": f"**Protocol:** {protocol}"}
