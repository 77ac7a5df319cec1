"""Tab 9, where the huge activations go: attention sinks, the implicit bias, all-block
interventions, the sliding-window demo and pruning meets sinks.

A tab of its own after "why it works" (not tab 2's second half): its analyses evaluate changed
models (perplexity points, minutes on a real model) like tab 7, while tab 2 is one quick dense
pass. The model job is ``service.jobs.sinks_job``; it reuses the model, calibration windows,
activation report and evaluation text of the session's last prune and keeps its result in the
session (``Session.sinks``). Named API endpoint: /sinks.
"""
from __future__ import annotations

import gradio as gr

from ...analysis.export import export_table
from ...analysis.sinks_run import SinksSpec, SinksResult, export_sinks
from ...analysis.sinks_view import PAPER_TEXT
from ...analysis.sliding_window import SlidingWindowConfig
from ...cancel import CancelToken
from ...figures import sinks as sink_figures
from ...figures.sinks_text import (attention_takeaway, bias_takeaway, intervention_takeaway,
                                   pruning_takeaway, window_takeaway)
from ...service import Session, get_limits, jobs
from ...service.cache import new_download_dir
from ...service.limits import check_text_size
from .. import fields, texts
from ..wiring import LONG, QUIET, Context, listen, need_calibration, pick, readable, wire_cancel

__all__ = ["TITLE", "ID", "PRESETS", "build", "wire", "refresh", "check_sinks", "on_sinks",
           "on_render",
           "on_refresh", "on_preset"]

TITLE, ID = "9. Sinks", "sinks"
REFRESH_ON = ("session",)
PLACEHOLDER = "*Run a prune in tab 1, then press the button above.*"
WINDOWS = [16, 32, 64, 128, 256, 512]
PRESETS = {  # name -> (windows, first tokens kept, random seeds, interventions)
    "Standard: windows 16-512 with the first 4 tokens, three random seeds":
        (WINDOWS, 4, 3, True),
    "Quick look: windows 16, 64, 256, one random seed": ([16, 64, 256], 4, 1, True),
    "Attention only: no perplexity points": ([], 4, 1, False),
}
OUTPUTS = ("summary", "attention", "bias", "view", "interventions_fig", "interventions",
           "window_fig", "window", "pruning_fig", "pruning", "protocols", "files")


def build(limits) -> dict:
    gr.Markdown(texts.SINKS_TAB)
    c = {}
    with gr.Row():
        c["preset"] = gr.Dropdown(list(PRESETS), value=list(PRESETS)[0], label="Preset", scale=3)
        c["windows"] = fields.CheckboxGroup(WINDOWS, value=WINDOWS, label="sliding windows W")
        c["sink_tokens"] = fields.IntSlider(1, 8, value=4, step=1, label="first tokens kept")
        c["seeds"] = fields.IntSlider(1, 5, value=3, step=1, label="random seeds")
        c["run_interventions"] = fields.Checkbox(value=True, label="all-block interventions")
    with gr.Row():
        c["sparsity"] = fields.Slider(0.1, 0.9, value=0.5, step=0.05, label="Sparsity (step 6)")
        c["view_text"] = gr.Textbox(value=PAPER_TEXT, label="Text of the token x "
                                    "channel view", scale=3)
    with gr.Row():
        c["run"] = gr.Button("Measure where the huge activations go", variant="primary",
                             scale=3)
        c["cancel"] = gr.Button("Cancel", variant="stop", scale=0, min_width=160)
    c["status"] = gr.Markdown()
    c["summary"] = gr.Markdown(PLACEHOLDER)
    c["attention"] = gr.Plot(label="1. Attention on the first token")
    c["bias"] = gr.Plot(label="2. The implicit bias")
    c["view"] = gr.Plot(label="3. |h| per token and channel")
    c["interventions_fig"] = gr.Plot(label="4. Massive activations replaced in every block")
    c["interventions"] = gr.Dataframe(label="Perplexity per intervention", interactive=False)
    c["window_fig"] = gr.Plot(label="5. Sliding-window attention")
    c["window"] = gr.Dataframe(label="Perplexity per window", interactive=False)
    c["pruning_fig"] = gr.Plot(label="6. Pruning meets sinks")
    c["pruning"] = gr.Dataframe(label="Kept share per module type", interactive=False)
    with gr.Accordion("Protocol", open=False):
        gr.Markdown(texts.SINKS_PROTOCOL)
        c["protocols"] = gr.Markdown()
    c["files"] = gr.File(label="Download JSON / CSV", file_count="multiple")
    return c


def wire(ctx: Context) -> None:
    c = ctx.tabs[ID]
    listen(c["preset"].change, on_preset, [c["preset"]],
           pick(c, "windows", "sink_tokens", "seeds", "run_interventions"), **QUIET)
    event = listen(c["run"].click, on_sinks, [ctx.session],
                   {"session": ctx.session, **pick(c, *OUTPUTS)}, api_name="sinks",
                   inputs_kwargs=pick(c, "windows", "sink_tokens", "seeds", "run_interventions",
                                      "sparsity", "view_text"),
                   check=check_sinks, long_job="sinks", **LONG)
    wire_cancel(c["cancel"], event, "sinks", c["status"])


def refresh(ctx: Context, trigger):
    """After a prune: clear the views if the result went with the old setup."""
    return listen(trigger, on_refresh, [ctx.session], pick(ctx.tabs[ID], *OUTPUTS), **QUIET)


def on_refresh(session: Session) -> dict:
    """Empty views without a result; else leave the shown ones (same setup, same result)."""
    return on_render(session) if session.sinks is None else {n: gr.skip() for n in OUTPUTS}


def on_preset(preset: str) -> dict:
    if preset not in PRESETS:
        raise gr.Error(f"unknown preset {preset!r}")
    return dict(zip(("windows", "sink_tokens", "seeds", "run_interventions"), PRESETS[preset]))


def _spec(session: Session, *, windows, sink_tokens, seeds, run_interventions, sparsity,
          view_text) -> SinksSpec:
    seq_len = session.calib_ids.shape[1]   # chunks of the evaluation text: the window length
    fitting = sorted(int(w) for w in windows if int(w) + 2 <= seq_len)
    window = SlidingWindowConfig(windows=tuple(fitting), sink_tokens=int(sink_tokens),
                                 chunk_len=seq_len, max_chunks=2) if fitting else None
    return SinksSpec(view_text=view_text or PAPER_TEXT, interventions=bool(run_interventions),
                     seeds=tuple(range(int(seeds))), window=window, sparsity=float(sparsity))


def check_sinks(session: Session, **request) -> None:
    """Refuse a /sinks request before the queue: no prune yet, a view text over the limit."""
    need_calibration(session)
    limits = get_limits()
    check_text_size(request.get("view_text"), "view_text", "the view text",
                    limits.max_prompt_chars, "WANDA_VIZ_MAX_PROMPT_CHARS")


@readable
def on_sinks(session: Session, progress=gr.Progress(track_tqdm=True), *, windows: list[int],
             sink_tokens: int, seeds: int, run_interventions: bool, sparsity: float,
             view_text: str, cancel: CancelToken | None = None) -> dict:
    """Every sinks measure on the dense model of the session's last prune; ``cancel`` stops it
    between points and inside a point at block boundaries."""
    check_sinks(session, view_text=view_text)
    spec = _spec(session, windows=windows, sink_tokens=sink_tokens, seeds=seeds,
                     run_interventions=run_interventions, sparsity=sparsity,
                 view_text=view_text)
    session.sinks = jobs.sinks_job(session.model, session.calib_ids, session.eval_spec,
                                   calibration=session.calibration, limits=get_limits(),
                                   sinks=spec, report=session.report, cancel=cancel)
    return {"session": session, **on_render(session), "files": _files(session.sinks, spec)}


def _summary(result: SinksResult) -> str:
    lines = [attention_takeaway(result.sinks), bias_takeaway(result.sinks)]
    if result.interventions is not None:
        lines.append(intervention_takeaway(result.interventions))
    if result.window is not None:
        lines.append(window_takeaway(result.window))
    lines += [pruning_takeaway(result.pruning_kinds, result.sparsity), *result.notes,
              "*Protocols: under each figure and in the Protocol accordion at the end.*"]
    return "\n\n".join(lines)


def _files(result: SinksResult, spec: SinksSpec) -> list[str]:
    folder = new_download_dir()
    paths = [export_sinks(result, spec, folder / "sinks.json")]
    for name, table in (("interventions", result.interventions), ("window", result.window),
                        ("pruning", result.pruning), ("bias", result.sinks.bias)):
        if table is not None:
            paths.append(export_table(table, folder / f"sinks_{name}.csv"))
    return [str(p) for p in paths]


def _protocols(result: SinksResult) -> str:
    parts = [("attention and bias", result.sinks.protocol()), ("view", result.view.protocol()),
             ("interventions", result.intervention_protocol),
             ("sliding window", result.window_protocol), ("pruning", result.pruning_protocol)]
    return "\n\n".join(f"**{name}:** {text}" for name, text in parts if text)


def on_render(session: Session) -> dict:
    """Every view of the session's result; empty views (and no files) without one."""
    result = session.sinks
    if result is None:
        return {**dict.fromkeys(OUTPUTS), "summary": PLACEHOLDER}
    interventions, window = result.interventions, result.window
    return {
        "summary": _summary(result),
        "attention": sink_figures.plot_first_token_attention(result.sinks),
        "bias": sink_figures.plot_sink_bias(result.sinks),
        "view": sink_figures.plot_token_channels(result.view),
        "interventions_fig": sink_figures.plot_sink_interventions(
            interventions, result.intervention_protocol) if interventions is not None else None,
        "interventions": interventions.round(4) if interventions is not None else None,
        "window_fig": sink_figures.plot_sliding_window(window, result.window_protocol)
        if window is not None else None,
        "window": window.round(4) if window is not None else None,
        "pruning_fig": sink_figures.plot_sink_pruning(result.pruning_kinds, result.sparsity,
                                                      result.pruning_protocol),
        "pruning": result.pruning_kinds.round(4), "protocols": _protocols(result),
        "files": gr.skip()}
