"""Shared figure style: one fixed colour per method (from the registry), captions carrying the
protocol, log helpers."""
from __future__ import annotations

import textwrap

import plotly.graph_objects as go

from ..pruning.registry import METHODS, REFINEMENTS

__all__ = ["METHOD_COLORS", "CATEGORY_COLORS", "STRUCTURE_SYMBOLS", "method_color", "method_dash",
           "finish_figure", "wrap_caption"]

# Each method's colour is its registry entry's (Paul Tol's colour-blind-safe "bright" scheme);
# the same colour for a method in every figure. A refined method ("wanda+dsnot") keeps its base's.
METHOD_COLORS = {"dense": "#333333", **{name: spec.color for name, spec in METHODS.items()}}
_FALLBACK_COLORS = ("#CCBB44", "#66CCEE", "#AA3377", "#BBBBBB")
# mask categories (analysis.groups.CATEGORY_LABELS order): both kept, both pruned, row, layer
CATEGORY_COLORS = ("#DDDDDD", "#222222", "#4477AA", "#EE6677")
STRUCTURE_SYMBOLS = {"unstructured": "circle", "2:4": "diamond", "4:8": "square"}
CAPTION_WIDTH = 120  # characters per caption line


def method_color(method: str, index: int = 0) -> str:
    """The method's fixed colour (a refined "base+refine" gets its base's); unknown names (e.g. a
    custom variant) cycle through spares."""
    key = method.split()[0].lower().partition("+")[0] if method else ""
    return METHOD_COLORS.get(key, _FALLBACK_COLORS[index % len(_FALLBACK_COLORS)])


def method_dash(method: str) -> str:
    """Line dash of a method key: its refinement's for "base+refine", else the method's own."""
    base, _, refine = (method.split()[0].lower() if method else "").partition("+")
    if refine in REFINEMENTS:
        return REFINEMENTS[refine].dash
    return METHODS[base].dash if base in METHODS else "solid"


def wrap_caption(text: str) -> str:
    """Wrap a protocol caption into <br>-separated lines."""
    return "<br>".join(textwrap.wrap(text, CAPTION_WIDTH)) if text else ""


def finish_figure(fig: go.Figure, *, title: str, x_title: str | None, y_title: str | None,
                  caption: str | None = None, log_y: bool = False,
                  log_x: bool = False, height: int = 420) -> go.Figure:
    """Title, axis titles (with units), optional log axes and the protocol caption.

    The caption is the title's subtitle (``fig.layout.title.subtitle.text``): above the plot, so
    long rotated tick labels cannot overlap it.
    """
    wrapped = wrap_caption(caption or "")
    lines = wrapped.count("<br>") + 1 if wrapped else 0
    top = 50 + 15 * lines
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left",
               "subtitle": {"text": wrapped, "font": {"size": 11, "color": "#555555"}}},
        height=height + top - 50, margin={"l": 70, "r": 30, "t": top + 20, "b": 60},
        template="plotly_white")
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    if log_x:
        fig.update_xaxes(type="log")
    if log_y:
        fig.update_yaxes(type="log")
    return fig
