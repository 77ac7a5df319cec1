"""Tab 7, why it works: a teacher's walkthrough of the mechanism behind Wanda, in three steps.

The model job is ``service.jobs.why_job``. It reuses the model, calibration windows and perplexity
protocol of the session's last prune (tab 1) and keeps its result in the session (``Session.why``),
so a prune with another model or other windows clears it, like every other analysis.
Named API endpoint: /why (outputs: summary, figures, tables, protocols, files CSV / JSON).
"""
from __future__ import annotations

import gradio as gr

from ... import figures
from ...analysis import ChannelSpec, WhySpec
from ...analysis.why_run import WhyResult, export_why
from ...service import Session, get_limits, jobs
from ...service.cache import new_download_dir
from .. import texts
from ..wiring import LONG, QUIET, Context, listen, need_calibration, pick, readable

__all__ = ["TITLE", "ID", "PRESETS", "build", "wire", "refresh", "on_why", "on_render",
           "on_refresh", "on_layer", "on_preset"]

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
OUTPUTS = ("summary", "layer", "scatter", "by_layer", "weights_fig", "weights", "weights_protocol",
           "activations_fig", "activations", "activations_protocol", "files")


def build(limits) -> dict:
    gr.Markdown(texts.WHY_TAB)
    c = {}
    with gr.Row():
        c["preset"] = gr.Dropdown(list(PRESETS), value=list(PRESETS)[0], label="Preset", scale=3)
        c["sparsity"] = gr.Slider(0.1, 0.9, value=0.5, step=0.05, label="Sparsity of both masks")
        c["ks"] = gr.CheckboxGroup(KS, value=[1, 2, 4, 8], label="k: input channels cut per layer")
        c["seeds"] = gr.Slider(1, 5, value=3, step=1, label="random seeds")
    c["run"] = gr.Button("Run the three steps", variant="primary")
    gr.Markdown("### 1. Where Wanda and magnitude disagree")
    c["summary"] = gr.Markdown(PLACEHOLDER)
    c["layer"] = gr.Dropdown([ALL_LAYERS], value=ALL_LAYERS, label="Layer",
                             allow_custom_value=True)
    with gr.Row():
        c["scatter"] = gr.Plot(label="Disagreement vs input-channel norm")
        c["by_layer"] = gr.Plot(label="Share on each layer's top channels")
    gr.Markdown("### 2. Cut the weights that read the outlier channels")
    c["weights_fig"] = gr.Plot(label="Perplexity vs k: outlier vs random channels")
    c["weights"] = gr.Dataframe(label="Perplexity per cut", interactive=False)
    c["weights_protocol"] = gr.Markdown()
    gr.Markdown("### 3. Massive activations: zero vs mean")
    c["activations_fig"] = gr.Plot(label="Perplexity with massive activations replaced")
    c["activations"] = gr.Dataframe(label="Perplexity per intervention", interactive=False)
    c["activations_protocol"] = gr.Markdown()
    c["files"] = gr.File(label="Download CSV / JSON", file_count="multiple")
    return c


def wire(ctx: Context) -> None:
    c = ctx.tabs[ID]
    listen(c["preset"].change, on_preset, [c["preset"]], pick(c, "sparsity", "ks", "seeds"),
           **QUIET)
    listen(c["run"].click, on_why, [ctx.session], {"session": ctx.session, **pick(c, *OUTPUTS)},
           api_name="why", inputs_kwargs=pick(c, "sparsity", "ks", "seeds"), **LONG)
    listen(c["layer"].change, on_layer, [ctx.session, c["layer"]], pick(c, "scatter"), **QUIET)


def refresh(ctx: Context, trigger):
    """After a prune: clear the views if the result went with the old setup."""
    return listen(trigger, on_refresh, [ctx.session], pick(ctx.tabs[ID], *OUTPUTS), **QUIET)


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
             "the weights only Wanda keeps.",
             f"**Protocol:** {result.disagreement.protocol()}"]
    return "\n\n".join(lines)


def _files(result: WhyResult) -> list[str]:
    folder = new_download_dir()
    return [str(p) for p in export_why(result, out_csv=folder / "why.csv",
                                       out_json=folder / "why.json")]


@readable
def on_why(session: Session, progress=gr.Progress(track_tqdm=True), *, sparsity: float,
           ks: list[int], seeds: int) -> dict:
    """All three steps on the dense model of the session's last prune."""
    need_calibration(session)
    if session.eval_spec is None or session.eval_spec.source is None:
        raise gr.Error("steps 2 and 3 need an evaluation text: choose one in tab 1 and prune")
    if not ks:
        raise gr.Error("choose at least one k")
    why = WhySpec(sparsity=float(sparsity), channels=ChannelSpec(
        tuple(int(k) for k in ks), tuple(range(int(seeds)))))
    session.why = jobs.why_job(session.model, session.calib_ids, session.eval_spec,
                               calibration=session.calibration, limits=get_limits(), why=why)
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
        "layer": gr.Dropdown(choices=[ALL_LAYERS, *names[names != ALL_LAYERS]], value=ALL_LAYERS),
        "scatter": figures.plot_disagreement_vs_norm(result.disagreement),
        "by_layer": figures.plot_disagreement_by_layer(result.disagreement),
        "weights_fig": figures.plot_channel_intervention(result.weights),
        "weights": result.weights.table.round(4),
        "weights_protocol": f"**Protocol:** {result.weights.protocol()}",
        "activations_fig": figures.plot_activation_intervention(activations)
        if activations else None,
        "activations": activations.table.round(4) if activations else None,
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
