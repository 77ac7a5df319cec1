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
from ...service.estimates import session_workload
from ...service.plans import SWEEP_SPARSITIES, default_sweep, sweep_plan
from .. import texts, views
from ..wiring import LONG, QUIET, Context, listen, need_calibration, pick, readable

__all__ = ["TITLE", "ID", "build", "wire", "refresh", "on_sweep", "on_plan"]

TITLE, ID = "5. Perplexity vs sparsity", "sweep"
REFRESH_ON = ("session",)
REQUEST = ("methods", "sparsities", "structures")


def build(limits) -> dict:
    gr.Markdown(texts.SWEEP_TAB)
    methods, sparsities = default_sweep(limits.max_sweep_points)
    c = {}
    with gr.Row():
        c["methods"] = gr.CheckboxGroup(list(METHOD_NAMES), value=methods, label="Methods")
        c["sparsities"] = gr.CheckboxGroup(list(SWEEP_SPARSITIES), value=sparsities,
                                           label="Sparsities")
        c["structures"] = gr.CheckboxGroup(list(STRUCTURES), value=["unstructured"],
                                           label="Structures")
    c["run"] = gr.Button("Run or extend the sweep", variant="primary")
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
    listen(c["run"].click, on_sweep, [ctx.session],
           {"session": ctx.session, **pick(c, "takeaway", "plot", "table", "protocol", "files")},
           api_name="sweep", inputs_kwargs=pick(c, *REQUEST), **LONG)
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


@readable
def on_sweep(session: Session, progress=gr.Progress(track_tqdm=True), *,
             methods: list[str], sparsities: list[float],
             structures: list[str]) -> dict:
    """Run or extend a sweep (cached points are read from disk); plot and write the downloads."""
    need_calibration(session)
    if not methods or not structures or (not sparsities and "unstructured" in structures):
        raise gr.Error("choose at least one method, one structure and (for unstructured) one "
                       "sparsity")
    if session.eval_spec is None or session.eval_spec.source is None:
        raise gr.Error("the sweep needs an evaluation text: choose one in tab 1 and prune")
    sweep = SweepSpec(methods=tuple(methods), sparsities=tuple(map(float, sparsities)),
                      structures=tuple(structures))
    table = jobs.sweep_job(session.model, session.calib_ids, session.eval_spec, sweep,
                           calibration=session.calibration, limits=get_limits())
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
