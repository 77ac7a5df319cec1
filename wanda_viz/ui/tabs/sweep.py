"""Tab 5, perplexity vs sparsity: run or extend a cached sweep, plot it, download it.

Named API endpoint: /sweep (outputs: plot, table, protocol, files CSV / JSON / HTML).
"""
from __future__ import annotations

import gradio as gr

from ... import figures
from ...analysis import SweepSpec, export_table
from ...pruning.registry import DEFAULT_METHODS, METHOD_NAMES, STRUCTURES
from ...service import Session, get_limits, jobs
from ...service.cache import new_download_dir
from .. import texts, views
from ..wiring import LONG, Context, listen, need_calibration, pick, readable

__all__ = ["TITLE", "ID", "build", "wire", "on_sweep"]

TITLE, ID = "5. Perplexity vs sparsity", "sweep"
SWEEP_SPARSITIES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def build(limits) -> dict:
    gr.Markdown(texts.SWEEP_TAB)
    c = {}
    with gr.Row():
        c["methods"] = gr.CheckboxGroup(list(METHOD_NAMES), value=list(DEFAULT_METHODS),
                                        label="Methods")
        c["sparsities"] = gr.CheckboxGroup(SWEEP_SPARSITIES, value=[0.5], label="Sparsities")
        c["structures"] = gr.CheckboxGroup(list(STRUCTURES), value=["unstructured"],
                                           label="Structures")
    c["run"] = gr.Button("Run or extend the sweep", variant="primary")
    c["plot"] = gr.Plot(label="Perplexity vs sparsity")
    c["table"] = gr.Dataframe(label="Sweep points", interactive=False)
    c["protocol"] = gr.Markdown(label="Protocol")
    c["files"] = gr.File(label="Download CSV / JSON / HTML", file_count="multiple")
    return c


def wire(ctx: Context) -> None:
    c = ctx.tabs[ID]
    listen(c["run"].click, on_sweep, [ctx.session],
           {"session": ctx.session, **pick(c, "plot", "table", "protocol", "files")},
           api_name="sweep", inputs_kwargs=pick(c, "methods", "sparsities", "structures"), **LONG)


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
            "table": views.sweep_table(table),
            "protocol": f"**Protocol:** {figures.sweep_caption(table)}",
            "files": _sweep_files(table)}


def _sweep_files(table) -> list[str]:
    folder = new_download_dir()
    caption = figures.sweep_caption(table)
    return [str(export_table(table, folder / "sweep.csv", protocol=caption)),
            str(export_table(table, folder / "sweep.json", protocol=caption)),
            str(figures.write_sweep_report(table, folder / "sweep.html"))]
