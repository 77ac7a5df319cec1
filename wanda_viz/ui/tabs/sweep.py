"""Tab 5, perplexity vs sparsity: run or extend a cached sweep, plot it, download it.

Named API endpoint: /sweep (outputs: takeaway, plot, table, protocol, files CSV / JSON / HTML).
"""
from __future__ import annotations

import gradio as gr

from ... import figures
from ...analysis import SweepSpec, export_table, sweep_takeaway
from ...pruning.registry import METHOD_NAMES, STRUCTURES
from ...service import Session, get_limits, jobs
from ...service.cache import new_download_dir
from ...cancel import CancelToken
from ...service.estimates import session_workload
from ...service.plans import SWEEP_SPARSITIES, default_sweep, sweep_plan
from .. import fields, texts, views
from ..wiring import LONG, QUIET, Context, listen, need_calibration, pick, readable, wire_cancel

__all__ = ["TITLE", "ID", "build", "wire", "refresh", "check_sweep", "on_sweep", "on_plan"]

TITLE, ID = "5. Perplexity vs sparsity", "sweep"
REFRESH_ON = ("session",)
REQUEST = ("methods", "sparsities", "structures")


def build(limits) -> dict:
    gr.Markdown(texts.SWEEP_TAB)
    methods, sparsities = default_sweep(limits.max_sweep_points)
    c = {}
    with gr.Row():
        c["methods"] = fields.CheckboxGroup(list(METHOD_NAMES), value=methods, label="Methods")
        c["sparsities"] = fields.CheckboxGroup(list(SWEEP_SPARSITIES), value=sparsities,
                                               label="Sparsities")
        c["structures"] = fields.CheckboxGroup(list(STRUCTURES), value=["unstructured"],
                                               label="Structures")
    with gr.Row():
        c["run"] = gr.Button("Run or extend the sweep", variant="primary", scale=3)
        c["cancel"] = gr.Button("Cancel", variant="stop", scale=0, min_width=160)
    c["status"] = gr.Markdown()
    c["plan"] = gr.Markdown(_plan_text(methods, sparsities, ["unstructured"], None))
    c["takeaway"] = gr.Markdown()
    c["plot"] = gr.Plot(label="Perplexity vs sparsity", show_label=False)
    with gr.Accordion("Table, protocol and downloads", open=False):
        c["table"] = gr.Dataframe(label="Sweep points", interactive=False, wrap=True)
        c["protocol"] = gr.Markdown(label="Protocol")
        c["files"] = gr.File(label="Download CSV / JSON / HTML (full precision)",
                             file_count="multiple")
    return c


def wire(ctx: Context) -> None:
    c = ctx.tabs[ID]
    event = listen(c["run"].click, on_sweep, [ctx.session],
                   {"session": ctx.session, **pick(c, "takeaway", "plot", "table", "protocol",
                                                   "files")},
                   api_name="sweep", inputs_kwargs=pick(c, *REQUEST), check=check_sweep,
                   long_job="sweep", **LONG)
    wire_cancel(c["cancel"], event, "sweep", c["status"])
    for name in REQUEST:
        listen(c[name].change, on_plan, [ctx.session], pick(c, "plan"),
               inputs_kwargs=pick(c, *REQUEST), **QUIET)


def refresh(ctx: Context, trigger):
    """After a prune: the estimate for the new model and windows."""
    c = ctx.tabs[ID]
    return listen(trigger, on_plan, [ctx.session], pick(c, "plan"),
                  inputs_kwargs=pick(c, *REQUEST), **QUIET)


def _plan_text(methods, sparsities, structures, session: Session | None) -> str:
    work = session_workload(session) if session is not None else None
    return sweep_plan(methods, sparsities, structures, get_limits().max_sweep_points, work)


def on_plan(session: Session, *, methods: list[str], sparsities: list[float],
            structures: list[str]) -> dict:
    return {"plan": _plan_text(methods or [], [float(s) for s in sparsities or []],
                               structures or [], session)}


def check_sweep(session: Session, *, methods: list[str], sparsities: list[float],
                structures: list[str]) -> None:
    """Refuse a /sweep request before the queue: no prune, nothing chosen, no evaluation text,
    more points than ``WANDA_VIZ_MAX_SWEEP_POINTS``."""
    need_calibration(session)
    if not methods or not structures or (not sparsities and "unstructured" in structures):
        raise gr.Error("choose at least one method, one structure and (for unstructured) one "
                       "sparsity")
    if session.eval_spec is None or session.eval_spec.source is None:
        raise gr.Error("the sweep needs an evaluation text: choose one in tab 1 and prune")
    jobs.check_sweep_size(_sweep_spec(methods, sparsities, structures), get_limits())


def _sweep_spec(methods: list[str], sparsities: list[float], structures: list[str]) -> SweepSpec:
    return SweepSpec(methods=tuple(methods), sparsities=tuple(map(float, sparsities)),
                     structures=tuple(structures))


@readable
def on_sweep(session: Session, progress=gr.Progress(track_tqdm=True), *,
             methods: list[str], sparsities: list[float],
             structures: list[str], cancel: CancelToken | None = None) -> dict:
    """Run or extend a sweep (cached points are read from disk); plot and write the downloads.
    ``cancel`` stops it between points and inside a point at block boundaries."""
    check_sweep(session, methods=methods, sparsities=sparsities, structures=structures)
    table = jobs.sweep_job(session.model, session.calib_ids, session.eval_spec,
                           _sweep_spec(methods, sparsities, structures),
                           calibration=session.calibration, limits=get_limits(), cancel=cancel)
    session.sweep = table
    return {"session": session, "plot": figures.plot_sweep(table),
            "table": views.sweep_table(table), "takeaway": sweep_takeaway(table),
            "protocol": f"**Protocol:** {figures.sweep_caption(table)}",
            "files": _sweep_files(table)}


def _sweep_files(table) -> list[str]:
    folder = new_download_dir()
    caption = figures.sweep_caption(table)
    return [str(export_table(table, folder / "sweep.csv", protocol=caption)),
            str(export_table(table, folder / "sweep.json", protocol=caption)),
            str(figures.write_sweep_report(table, folder / "sweep.html"))]
