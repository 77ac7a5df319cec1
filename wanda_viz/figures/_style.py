"""Shared figure style: one look per method (from the registry), short captions, readable axes.

* Method looks: colour, line dash and marker symbol come from the method's registry entry
  (``pruning.registry.MethodSpec.color/dash/marker``); a refined run ("wanda+dsnot") keeps its
  base's colour and marker and takes the refinement's dash. Bars get a fill pattern derived from
  the marker, so methods differ without colour too. ``METHOD_STYLES`` is built from the registry
  (plus "dense"); a new method gets its look from its entry only.
* Log axes get plain ticks (``log_ticks``): decades, or 1-2-5 steps / nice linear steps when the
  data span less than two decades; never Plotly's SI prefixes ("100n", "100µ") or minor digit
  labels ("2, 5"). Every axis writes numbers plainly (``exponentformat="none"``).
* ``finish_figure`` puts a short caption under the title and keeps the full protocol in
  ``fig.layout.meta["protocol"]`` (``figure_protocol``): the dashboard shows it one click away,
  the HTML report prints it.
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable

import plotly.graph_objects as go

from ..pruning.registry import METHODS, REFINEMENTS

__all__ = ["METHOD_STYLES", "METHOD_COLORS", "CATEGORY_COLORS", "STRUCTURE_SYMBOLS",
           "method_style", "method_color", "method_dash", "method_line", "method_marker",
           "method_pattern", "plain_number", "log_ticks", "apply_log_axis", "add_dense_line",
           "finish_figure", "wrap_caption", "figure_protocol"]

# Bar fill pattern per marker symbol (bars carry no marker): a method's pattern follows its
# registry marker, so it needs no field of its own.
_MARKER_PATTERNS = {"circle": "", "square": "/", "diamond": "x", "triangle-up": ".",
                    "cross": "+", "star": "-", "hexagon": "|"}


def _entry_style(color: str, dash: str, marker: str) -> dict[str, str]:
    return {"color": color, "dash": dash, "symbol": marker,
            "pattern": _MARKER_PATTERNS.get(marker, ".")}


# One look per method in every figure, from the registry: colour, line dash, marker, bar pattern.
METHOD_STYLES: dict[str, dict[str, str]] = {
    "dense": {"color": "#333333", "dash": "dash", "symbol": "line-ew", "pattern": ""},
    **{name: _entry_style(spec.color, spec.dash, spec.marker) for name, spec in METHODS.items()},
}
METHOD_COLORS = {name: style["color"] for name, style in METHOD_STYLES.items()}
# Unknown names (a custom variant) cycle through spares that no method uses.
_SPARE_STYLES = tuple(_entry_style(c, d, s) for c, d, s in (
    ("#CCBB44", "longdash", "triangle-up"), ("#66CCEE", "longdashdot", "cross"),
    ("#AA3377", "dash", "star"), ("#BBBBBB", "dot", "hexagon")))
# mask categories (analysis.groups.CATEGORY_LABELS order): both kept, both pruned, row, layer.
# Not red or blue: those mean magnitude and Wanda.
CATEGORY_COLORS = ("#DDDDDD", "#222222", "#AA3377", "#CCBB44")
# N:M points on the sweep: symbols no method uses as its own marker.
STRUCTURE_SYMBOLS = {"unstructured": "circle", "2:4": "star", "4:8": "hexagram"}
CAPTION_WIDTH = 110  # characters per caption line (fits an 800 px wide window)


def method_style(method: str, index: int = 0) -> dict[str, str]:
    """The method's look; the first word of a run label ("wanda 50%") names the method.

    A refined key ("wanda+dsnot") keeps its base's colour, marker and pattern and takes the
    refinement's dash (``RefinementSpec.dash``).
    """
    word = method.split()[0].lower() if method else ""
    base, _, refine = word.partition("+")
    if base in METHODS:  # read at call time: an entry registered later gets its own look
        spec = METHODS[base]
        style = _entry_style(spec.color, spec.dash, spec.marker)
    else:
        style = METHOD_STYLES.get(base, _SPARE_STYLES[index % len(_SPARE_STYLES)])
    if refine in REFINEMENTS:
        style = {**style, "dash": REFINEMENTS[refine].dash}
    return style


def method_color(method: str, index: int = 0) -> str:
    return method_style(method, index)["color"]


def method_dash(method: str, index: int = 0) -> str:
    """Line dash of a method key: its refinement's for "base+refine", else the method's own."""
    return method_style(method, index)["dash"]


def method_line(method: str, index: int = 0, **extra) -> dict:
    """``line=`` of a trace: colour and dash of the method."""
    style = method_style(method, index)
    return {"color": style["color"], "dash": style["dash"], **extra}


def method_marker(method: str, index: int = 0, **extra) -> dict:
    """``marker=`` of a scatter trace: colour and symbol of the method."""
    style = method_style(method, index)
    return {"color": style["color"], "symbol": style["symbol"], **extra}


def method_pattern(method: str, index: int = 0) -> dict:
    """``marker=`` of a bar trace: colour and fill pattern of the method."""
    style = method_style(method, index)
    return {"color": style["color"], "pattern": {"shape": style["pattern"],
                                                 "fgcolor": "#FFFFFF", "solidity": 0.3}}


# -- plain numbers on axes -------------------------------------------------------------------------

def plain_number(value: float) -> str:
    """A tick label a reader reads at once: 0.01, 5, 1,000, 2,500,000; 1e-5 and 1e10 beyond."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e9 or magnitude < 1e-3:
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if magnitude >= 1:
        return f"{value:,.0f}" if value == round(value) else f"{value:,.4g}"
    return f"{value:.4g}"


def _nice_step(span: float, target: int = 5) -> float:
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def log_ticks(values: Iterable[float]) -> list[float]:
    """Tick values of a log axis holding ``values`` (positive ones count).

    Two decades or more: powers of ten (every second one beyond ten decades). Less: the 1-2-5
    sequence; under a factor of three: evenly spaced nice steps. Values reach one step beyond
    the data on both sides, so autorange padding never leaves an end without a tick.
    """
    positive = [float(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    if not positive:
        return [1.0, 10.0, 100.0]
    low, high = min(positive), max(positive)
    lo, hi = math.floor(math.log10(low)), math.ceil(math.log10(high))
    if high / low < 3:
        step = _nice_step(high - low or high)
        start = math.floor(low / step) * step
        ticks, tick = [], max(start - step, step)
        while tick <= high + step:
            ticks.append(round(tick, 12))
            tick += step
        return ticks
    if high / low < 100:
        return [m * 10.0 ** e for e in range(lo - 1, hi + 1) for m in (1, 2, 5)]
    stride = 2 if hi - lo > 10 else 1
    return [10.0 ** e for e in range(lo - 1, hi + 2, stride)]


def _trace_values(fig: go.Figure, axis: str) -> list[float]:
    values = []
    for trace in fig.data:
        data = getattr(trace, axis, None)
        if data is None:
            continue
        for value in data:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values.append(float(value))
    return values


def apply_log_axis(fig: go.Figure, axis: str = "y", values: Iterable[float] | None = None, *,
                   row: int | None = None, col: int | None = None) -> go.Figure:
    """Make the x or y axis (of one subplot, with row/col) logarithmic with plain ticks.

    Args:
        values: the data on that axis; None = every trace's values on it.
    """
    ticks = log_ticks(_trace_values(fig, axis) if values is None else values)
    update = fig.update_yaxes if axis == "y" else fig.update_xaxes
    update(type="log", tickmode="array", tickvals=ticks,
           ticktext=[plain_number(t) for t in ticks], minor={"showgrid": False}, row=row, col=col)
    return fig


def add_dense_line(fig: go.Figure, value: float, label: str, *, log_y: bool = False) -> None:
    """A dashed line across the whole plot at the dense model's value, labelled at the left.

    A shape, not a trace: it spans the plot whatever the x axis holds (bar categories too).
    Annotations on a log axis take log10 coordinates; shapes take data values.
    """
    fig.add_shape(type="line", xref="paper", x0=0, x1=1, y0=value, y1=value,
                  line={"color": METHOD_STYLES["dense"]["color"], "dash": "dash", "width": 2})
    fig.add_annotation(xref="paper", x=0.0, xanchor="left", yanchor="bottom", showarrow=False,
                       y=math.log10(value) if log_y else value, text=label,
                       font={"color": METHOD_STYLES["dense"]["color"]})


# -- titles and captions ---------------------------------------------------------------------------

def wrap_caption(text: str) -> str:
    """Wrap a caption into <br>-separated lines."""
    return "<br>".join(textwrap.wrap(text, CAPTION_WIDTH)) if text else ""


def figure_protocol(fig: go.Figure) -> str:
    """The full protocol a figure was made with ("" when it has none)."""
    meta = fig.layout.meta
    return meta.get("protocol", "") if isinstance(meta, dict) else ""


def finish_figure(fig: go.Figure, *, title: str, x_title: str | None, y_title: str | None,
                  caption: str | None = None, protocol: str | None = None,
                  log_y: bool = False, log_x: bool = False, height: int = 420) -> go.Figure:
    """Title, axis titles (with units), plain numbers, optional log axes, caption and protocol.

    The caption (short: what is drawn) is the title's subtitle (``fig.layout.title.subtitle``),
    above the plot so long tick labels cannot overlap it. The protocol goes to
    ``fig.layout.meta["protocol"]`` (``figure_protocol``); None = the caption is the protocol.
    """
    wrapped = wrap_caption(caption or "")
    lines = wrapped.count("<br>") + 1 if wrapped else 0
    top = 50 + 15 * lines
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left",
               "subtitle": {"text": wrapped, "font": {"size": 11, "color": "#555555"}}},
        height=height + top - 50, margin={"l": 70, "r": 30, "t": top + 20, "b": 60},
        template="plotly_white", meta={"protocol": protocol or caption or ""})
    fig.update_xaxes(exponentformat="none", separatethousands=True, automargin=True)
    fig.update_yaxes(exponentformat="none", separatethousands=True, automargin=True)
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    if log_x:
        apply_log_axis(fig, "x")
    if log_y:
        apply_log_axis(fig, "y")
    return fig
