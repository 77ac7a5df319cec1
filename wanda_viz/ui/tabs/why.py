"""Tab 7, why it works: a teacher's walkthrough of the mechanism behind Wanda, in three steps.

The model job is ``service.jobs.why_job``. It reuses the model, calibration windows and perplexity
protocol of the session's last prune (tab 1) and keeps its result in the session (``Session.why``),
so a prune with another model or other windows clears it, like every other analysis.
Named API endpoint: /why (outputs: summary, figures, tables, protocols, files CSV / JSON).
"""
from __future__ import annotations

import gradio as gr

from ... import figures
from ...analysis import ChannelSpec, WhySpec, activation_takeaway, channel_cut_takeaway
from ...analysis.why_run import WhyResult, export_why
from ...service import Session, get_limits, jobs
from ...service.cache import new_download_dir
from ...cancel import CancelToken
from ...service.estimates import session_workload, why_estimate
from .. import fields, tables, texts
from ...errors import FieldError
from ..wiring import LONG, QUIET, Context, listen, need_calibration, pick, readable, wire_cancel

__all__ = ["TITLE", "ID", "PRESETS", "build", "wire", "refresh", "check_why", "on_why",
           "on_render", "on_refresh", "on_layer", "on_preset", "on_estimate"]

TITLE, ID = "7. Why it works", "why"
REFRESH_ON = ("session",)
PLACEHOLDER = "*Run a prune in tab 1, then press the button above.*"
ALL_LAYERS = "all layers"
KS = [1, 2, 4, 8, 16]
PRESETS = {  # name -> (sparsity, ks, random seeds)
    "Standard: 50%, k = 1, 2, 4, 8, three random seeds": (0.5, [1, 2, 4, 8], 3),
    "Quick look: 50%, k = 1, 2, 4, one random seed": (0.5, [1, 2, 4], 1),
    "High sparsity: 70%, k = 1, 2, 4, 8, three random seeds": (0.7, [1, 2, 4, 8], 3),
}
OUTPUTS = ("summary", "summary_protocol", "layer", "scatter", "by_layer", "weights_takeaway",
           "weights_fig", "weights", "weights_protocol", "activations_takeaway", "activations_fig",
           "activations", "activations_protocol", "files")


def build(limits) -> dict:
    gr.Markdown(texts.WHY_TAB)
    c = {}
    with gr.Row():
        c["preset"] = gr.Dropdown(list(PRESETS), value=list(PRESETS)[0], label="Preset", scale=3)
        c["sparsity"] = fields.Slider(0.1, 0.9, value=0.5, step=0.05,
                                      label="Sparsity of both masks")
        c["ks"] = fields.CheckboxGroup(KS, value=[1, 2, 4, 8],
                                       label="k: input channels cut per layer")
        c["seeds"] = fields.IntSlider(1, 5, value=3, step=1, label="random seeds")
    with gr.Row():
        c["run"] = gr.Button("Run the three steps", variant="primary", scale=3)
        c["cancel"] = gr.Button("Cancel", variant="stop", scale=0, min_width=160)
    c["status"] = gr.Markdown()
    c["estimate"] = gr.Markdown()
    with gr.Accordion("How the three steps are measured", open=False):
        gr.Markdown(texts.WHY_PROTOCOL)
    gr.Markdown("### 1. Where Wanda and magnitude disagree")
    c["summary"] = gr.Markdown(PLACEHOLDER)
    with gr.Accordion("Protocol of step 1", open=False):
        c["summary_protocol"] = gr.Markdown()
    c["layer"] = gr.Dropdown([ALL_LAYERS], value=ALL_LAYERS, label="Layer",
                             allow_custom_value=True)
    c["scatter"] = gr.Plot(label="Disagreement vs input-channel norm", show_label=False)
    c["by_layer"] = gr.Plot(label="Share on each layer's top channels", show_label=False)
    gr.Markdown("### 2. Cut the weights that read the outlier channels")
    c["weights_takeaway"] = gr.Markdown()
    c["weights_fig"] = gr.Plot(label="Perplexity vs k: outlier vs random channels",
                               show_label=False)
    with gr.Accordion("Table and protocol of step 2", open=False):
        c["weights"] = gr.Dataframe(label="Perplexity per cut", interactive=False)
        c["weights_protocol"] = gr.Markdown()
    gr.Markdown("### 3. Massive activations: zero vs mean")
    c["activations_takeaway"] = gr.Markdown()
    c["activations_fig"] = gr.Plot(label="Perplexity with massive activations replaced",
                                   show_label=False)
    with gr.Accordion("Table and protocol of step 3", open=False):
        c["activations"] = gr.Dataframe(label="Perplexity per intervention", interactive=False)
        c["activations_protocol"] = gr.Markdown()
    c["files"] = gr.File(label="Download CSV / JSON (full precision)", file_count="multiple")
    return c


def wire(ctx: Context) -> None:
    c = ctx.tabs[ID]
    listen(c["preset"].change, on_preset, [c["preset"]], pick(c, "sparsity", "ks", "seeds"),
           **QUIET)
    event = listen(c["run"].click, on_why, [ctx.session],
                   {"session": ctx.session, **pick(c, *OUTPUTS)}, api_name="why",
                   inputs_kwargs=pick(c, "sparsity", "ks", "seeds"), check=check_why,
                   long_job="why", **LONG)
    wire_cancel(c["cancel"], event, "why", c["status"])
    listen(c["layer"].change, on_layer, [ctx.session, c["layer"]], pick(c, "scatter"), **QUIET)
    for name in ("ks", "seeds"):
        listen(c[name].change, on_estimate, [ctx.session], pick(c, "estimate"),
               inputs_kwargs=pick(c, "ks", "seeds"), **QUIET)


def refresh(ctx: Context, trigger):
    """After a prune: clear the views if the result went with the old setup; a new estimate."""
    c = ctx.tabs[ID]
    event = listen(trigger, on_refresh, [ctx.session], pick(c, *OUTPUTS), **QUIET)
    return listen(event.then, on_estimate, [ctx.session], pick(c, "estimate"),
                  inputs_kwargs=pick(c, "ks", "seeds"), **QUIET)


def on_estimate(session: Session, *, ks: list[int], seeds: int) -> dict:
    """How long the three steps will take on this model and windows (before the click)."""
    work = session_workload(session)
    if work is None:
        return {"estimate": ""}
    return {"estimate": why_estimate(work, len(ks or []), int(seeds or 0))}


def on_refresh(session: Session) -> dict:
    """Empty views when the session has no result; else leave the shown ones as they are (the
    same setup keeps the same result, so nothing is rebuilt or resent after every prune)."""
    return on_render(session) if session.why is None else {name: gr.skip() for name in OUTPUTS}


def on_preset(preset: str) -> dict:
    """Sparsity, k values and number of random seeds of a preset."""
    if preset not in PRESETS:
        raise gr.Error(f"unknown preset {preset!r}")
    return dict(zip(("sparsity", "ks", "seeds"), PRESETS[preset]))


def _summary(result: WhyResult) -> str:
    overall = result.disagreement.overall
    share = result.disagreement.top_share
    lines = [f"Over {len(result.disagreement.layers) - 1 or 1} layers, the top {share:.0%} of "
             f"input channels by ||X_j|| carry **{overall['top_share']:.1%}** of the "
             f"{overall['disagreements']:,} weights on which the masks disagree (an even spread: "
             f"{overall['uniform_share']:.1%}) and **{overall['top_share_wanda_only']:.1%}** of "
             "the weights only Wanda keeps."]
    return "\n\n".join(lines)


def _files(result: WhyResult) -> list[str]:
    folder = new_download_dir()
    return [str(p) for p in export_why(result, out_csv=folder / "why.csv",
                                       out_json=folder / "why.json")]


def check_why(session: Session, *, sparsity: float, ks: list[int], seeds: int) -> None:
    """Refuse a /why request before the queue: no prune, no evaluation text, no k."""
    need_calibration(session)
    if session.eval_spec is None or session.eval_spec.source is None:
        raise gr.Error("steps 2 and 3 need an evaluation text: choose one in tab 1 and prune")
    if not ks:
        raise FieldError("ks", "choose at least one k")


@readable
def on_why(session: Session, progress=gr.Progress(track_tqdm=True), *, sparsity: float,
           ks: list[int], seeds: int, cancel: CancelToken | None = None) -> dict:
    """All three steps on the dense model of the session's last prune; ``cancel`` stops it
    between points and inside a point at block boundaries."""
    check_why(session, sparsity=sparsity, ks=ks, seeds=seeds)
    why = WhySpec(sparsity=float(sparsity), channels=ChannelSpec(
        tuple(int(k) for k in ks), tuple(range(int(seeds)))))
    session.why = jobs.why_job(session.model, session.calib_ids, session.eval_spec,
                               calibration=session.calibration, limits=get_limits(), why=why,
                               cancel=cancel)
    return {"session": session, **on_render(session), "files": _files(session.why)}


def on_render(session: Session) -> dict:
    """Every view of the session's result; empty views (and no files) when there is none.

    The download files are written by ``on_why`` only: a refresh leaves them as they are.
    """
    result = session.why
    if result is None:
        return {**dict.fromkeys(OUTPUTS), "summary": PLACEHOLDER,
                "layer": gr.Dropdown(choices=[ALL_LAYERS], value=ALL_LAYERS)}
    names = result.disagreement.layers["layer"]
    activations = result.activations
    return {
        "summary": _summary(result),
        "summary_protocol": f"**Protocol:** {result.disagreement.protocol()}",
        "layer": gr.Dropdown(choices=[ALL_LAYERS, *names[names != ALL_LAYERS]], value=ALL_LAYERS),
        "scatter": figures.plot_disagreement_vs_norm(result.disagreement),
        "by_layer": figures.plot_disagreement_by_layer(result.disagreement),
        "weights_takeaway": channel_cut_takeaway(result.weights),
        "weights_fig": figures.plot_channel_intervention(result.weights),
        "weights": tables.readable_table(result.weights.table, tables.WHY_WEIGHTS),
        "weights_protocol": f"**Protocol:** {result.weights.protocol()}",
        "activations_takeaway": activation_takeaway(activations, result.activation_note),
        "activations_fig": gr.Plot(figures.plot_activation_intervention(activations)
                                   if activations else None, visible=activations is not None),
        "activations": tables.readable_table(activations.table, tables.WHY_ACTIVATIONS)
        if activations else None,
        "activations_protocol": f"**Protocol:** {activations.protocol()}" if activations
        else f"*{result.activation_note}*",
        "files": gr.skip()}


def on_layer(session: Session, layer: str) -> dict:
    """Redraw the disagreement scatter for one layer (or all) from the session's result."""
    result = session.why
    if result is None or not layer:
        return {"scatter": None}
    return {"scatter": figures.plot_disagreement_vs_norm(
        result.disagreement, None if layer == ALL_LAYERS else layer)}
