"""UI handlers: validate primitive UI values -> call an engine job or an analysis -> call figures.

Expected failures (bad input, unknown or refused model, offline hub, missing data, out of memory)
become ``gr.Error`` with the library's message, so the app keeps serving. Results are returned
into the session's ``gr.State``; ``on_render_*`` handlers redraw a tab from that state alone.
"""
from __future__ import annotations

import functools

import gradio as gr
import torch

from .. import figures
from ..analysis import compare_group_masks, export_table
from ..config import PruneConfig
from . import engine, views
from .cache import new_download_dir
from .engine import PRESETS, Session
from .inputs import build_specs, check_range
from .settings import get_limits

__all__ = ["on_prune", "on_preset", "on_render_prune", "on_render_selectors", "on_outliers",
           "on_render_outliers", "on_input_norms", "on_scores", "on_render_scores",
           "on_render_masks", "on_ablation", "on_sweep", "on_generate", "on_render_generation"]

_MEMORY = ("out of memory", "can't allocate memory", "not enough memory")
_OOM_MESSAGE = ("out of memory: use fewer or shorter calibration windows, fewer evaluation "
                "windows, float16/bfloat16 or a smaller model")


def _readable(fn):
    """Turn expected failures into gr.Error; anything else propagates (and gets logged)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (torch.OutOfMemoryError, MemoryError) as err:
            raise gr.Error(_OOM_MESSAGE) from err
        except (ValueError, OSError) as err:  # includes DataUnavailableError
            raise gr.Error(str(err)) from err
        except RuntimeError as err:
            if any(s in str(err) for s in _MEMORY):
                raise gr.Error(_OOM_MESSAGE) from err
            raise
    return wrapper


def _run(session: Session, configs, setup: dict) -> Session:
    spec, calib, evaluation, limits = build_specs(**setup)
    same_windows = (session.model, session.calib_spec) == (spec, calib)
    same_dense = same_windows and session.eval_spec == evaluation and session.eval_protocol
    new = engine.prune_job(spec, calib, tuple(configs), evaluation, limits=limits,
                           with_dense=not same_dense,
                           with_report=not (same_windows and session.report is not None))
    return session.merge(new, limits.max_runs)


def _prune_outputs(session: Session):
    return session, *on_render_prune(session)


# -- tab 1: prune --------------------------------------------------------------------------------

@_readable
def on_prune(session: Session, *, model_choice: str, device: str, dtype: str, calib_source: str,
             calib_text: str, calib_file, n_samples: int, seq_len: int, seed: int,
             eval_source: str, eval_windows: int, method: str, sparsity: float,
             structure: str, group: str, progress=gr.Progress(track_tqdm=True)):
    """Prune once; the run joins the session's runs (same setup) or replaces them."""
    setup = dict(model_choice=model_choice, device=device, dtype=dtype, calib_source=calib_source,
                 calib_text=calib_text, calib_file=calib_file, n_samples=n_samples,
                 seq_len=seq_len, seed=seed, eval_source=eval_source, eval_windows=eval_windows)
    config = PruneConfig(method=method, sparsity=float(sparsity), structure=structure,
                         group=None if group in (None, "", "default") else group)
    return _prune_outputs(_run(session, [config], setup))


@_readable
def on_preset(session: Session, *, preset: str, model_choice: str, device: str, dtype: str,
              calib_source: str, calib_text: str, calib_file, n_samples: int, seq_len: int,
              seed: int, eval_source: str, eval_windows: int,
              progress=gr.Progress(track_tqdm=True)):
    """Run one of PRESETS (several methods on the same calibration windows) in one click."""
    if preset not in PRESETS:
        raise gr.Error(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    setup = dict(model_choice=model_choice, device=device, dtype=dtype, calib_source=calib_source,
                 calib_text=calib_text, calib_file=calib_file, n_samples=n_samples,
                 seq_len=seq_len, seed=seed, eval_source=eval_source, eval_windows=eval_windows)
    return _prune_outputs(_run(session, PRESETS[preset], setup))


def on_render_prune(session: Session):
    """(summary Markdown, runs table, per-layer sparsity figure of the latest run)."""
    latest = list(session.runs.values())[-1].result if session.runs else None
    figure = figures.plot_layer_sparsity(latest) if latest is not None else None
    return views.summary_markdown(session), views.runs_table(session), figure


def on_render_selectors(session: Session):
    """Refresh the run and layer pickers of the other tabs after a prune."""
    runs, layers = views.run_choices(session), views.layer_choices(session)
    run_pick = gr.Dropdown(choices=runs, value=runs[-1] if runs else None)
    layer = layers[0] if layers else None
    return (run_pick, gr.Dropdown(choices=layers, value=layer),
            gr.Dropdown(choices=layers, value=layer))


# -- tab 2: outlier features ---------------------------------------------------------------------

def _need_calibration(session: Session) -> None:
    if session.calib_ids is None:
        raise gr.Error("Run a prune in tab 1 first: the analyses reuse its model and calibration "
                       "windows.")


@_readable
def on_outliers(session: Session, progress=gr.Progress(track_tqdm=True)):
    """Recompute the activation report of the dense model on the session's calibration windows."""
    _need_calibration(session)
    session.report, session.report_tokens = engine.outliers_job(
        session.model, session.calib_ids, session.calibration, limits=get_limits())
    return session, *on_render_outliers(session)


def on_render_outliers(session: Session):
    """(magnitudes, heatmap, layer table, outlier features, massive, tokens, protocol)."""
    if session.report is None:
        return None, None, None, None, None, [], views.empty_message("activation report")
    layers, features, massive = views.outlier_tables(session)
    return (figures.plot_layer_magnitudes(session.report),
            figures.plot_residual_heatmap(session.report), layers, features, massive,
            views.token_view(session), f"**Protocol:** {session.report.protocol()}")


def on_input_norms(session: Session, layer: str):
    """Per-channel input norms (the Wanda statistic) of one prunable layer."""
    if session.report is None or not layer:
        return None
    if layer not in session.report.input_norms:
        raise gr.Error(f"unknown layer {layer!r}")
    return figures.plot_input_norms(session.report, layer)


# -- tabs 3 and 4: scores, per-row vs per-layer masks --------------------------------------------

@_readable
def on_scores(session: Session, *, layer: str, sparsity: float,
              progress=gr.Progress(track_tqdm=True)):
    """Magnitude / Wanda / SparseGPT scores of one layer of the dense model."""
    _need_calibration(session)
    if not layer:
        raise gr.Error("choose a layer")
    session.scores = engine.scores_job(session.model, session.calib_ids, layer, float(sparsity),
                                       calibration=session.calibration, limits=get_limits())
    return session, *on_render_scores(session)


def on_render_scores(session: Session):
    """(histograms with thresholds, thresholds table, agreement table)."""
    report = session.scores
    if report is None:
        return None, None, None
    thresholds = views.thresholds_table(report)
    return figures.plot_score_histograms(report), thresholds, report.agreement.round(4)


def on_render_masks(session: Session):
    """(row-sparsity histogram, kept/pruned map, disagreement Markdown) from the Wanda scores."""
    report = session.scores
    if report is None or "wanda" not in report.scores:
        return None, None, views.empty_message("layer scores (tab 3)")
    comparison = compare_group_masks(report.scores["wanda"], report.sparsity)
    return (figures.plot_row_sparsity(comparison, layer=report.layer),
            figures.plot_mask_categories(comparison, layer=report.layer),
            views.mask_markdown(report, comparison))


@_readable
def on_ablation(session: Session, *, sparsity: float, progress=gr.Progress(track_tqdm=True)):
    """Perplexity of Wanda and magnitude under each comparison group (the paper's ablation)."""
    _need_calibration(session)
    if session.eval_spec is None or session.eval_spec.source is None:
        raise gr.Error("the ablation needs an evaluation text: choose one in tab 1 and prune")
    session.ablation = engine.ablation_job(session.model, session.calib_ids, session.eval_spec,
                                           float(sparsity), limits=get_limits())
    protocol = views.ablation_protocol(session)
    return session, figures.plot_group_ablation(session.ablation, protocol=protocol), \
        session.ablation.round(4)


# -- tab 5: perplexity vs sparsity -----------------------------------------------------------------

@_readable
def on_sweep(session: Session, *, methods: list[str], sparsities: list[float],
             structures: list[str], progress=gr.Progress(track_tqdm=True)):
    """Run or extend a sweep (cached points are read from disk); plot and write the downloads."""
    _need_calibration(session)
    if not methods or not structures or (not sparsities and "unstructured" in structures):
        raise gr.Error("choose at least one method, one structure and (for unstructured) one "
                       "sparsity")
    if session.eval_spec is None or session.eval_spec.source is None:
        raise gr.Error("the sweep needs an evaluation text: choose one in tab 1 and prune")
    table = engine.sweep_job(session.model, session.calib_ids, session.eval_spec,
                             methods=tuple(methods), sparsities=tuple(map(float, sparsities)),
                             structures=tuple(structures), calibration=session.calibration,
                             limits=get_limits())
    session.sweep = table
    return (session, figures.plot_sweep(table), views.sweep_table(table),
            f"**Protocol:** {figures.sweep_caption(table)}", _sweep_files(table))


def _sweep_files(table) -> list[str]:
    folder = new_download_dir()
    caption = figures.sweep_caption(table)
    return [str(export_table(table, folder / "sweep.csv", protocol=caption)),
            str(export_table(table, folder / "sweep.json", protocol=caption)),
            str(figures.write_sweep_report(table, folder / "sweep.html"))]


# -- tab 6: generation -----------------------------------------------------------------------------

@_readable
def on_generate(session: Session, *, prompt: str, run: str, max_new_tokens: int,
                do_sample: bool, temperature: float, top_p: float, seed: int,
                progress=gr.Progress(track_tqdm=True)):
    """Dense and pruned continuations of the same prompt with the same decoding settings."""
    if not session.runs:
        raise gr.Error("Prune a model in tab 1 first.")
    if run not in session.runs:
        raise gr.Error(f"choose one of this session's runs: {', '.join(session.runs)}")
    if not (prompt or "").strip():
        raise gr.Error("the prompt is empty")
    check_range("max_new_tokens", max_new_tokens, 1, get_limits().max_new_tokens)
    session.generation = engine.generate_job(
        session.model, {run: session.runs[run]}, prompt, limits=get_limits(),
        max_new_tokens=int(max_new_tokens), do_sample=bool(do_sample),
        temperature=float(temperature), top_p=float(top_p), seed=int(seed or 0))
    return session, *on_render_generation(session)


def on_render_generation(session: Session):
    """(dense tokens, pruned tokens, summary table, token probability figure)."""
    comparison = session.generation
    if comparison is None:
        return [], [], None, None
    pruned = next((name for name in comparison.results if name != "dense"), "")
    return (views.highlighted_tokens(comparison, "dense"),
            views.highlighted_tokens(comparison, pruned), views.generation_table(comparison),
            figures.plot_generation_probs(comparison))
