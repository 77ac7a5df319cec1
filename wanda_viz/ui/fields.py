"""Numeric inputs whose errors name the field and its allowed values, for the UI and the API.

Gradio's own range check says "Value 1.5 is greater than maximum value 0.95." without the field,
lets ``null`` or a string through the API as an empty error, and silently rounds 8.7 windows to 9.
``Slider``, ``IntSlider``, ``Number`` and ``IntNumber`` here are drop-in components (same front
end) that check the value first:
a number of the right kind inside the range, or ``gr.Error("n_samples must be ...")``.
"""
from __future__ import annotations

import math
from numbers import Real

import gradio as gr

__all__ = ["check_number", "Slider", "IntSlider", "Number", "IntNumber"]


def check_number(value, field: str, low: float | None, high: float | None, *,
                 integer: bool = False) -> float | int:
    """``value`` as int/float when it is a number of the right kind in [low, high].

    Raises:
        ValueError: naming ``field`` and the allowed values.
    """
    kind = "a whole number" if integer else "a number"
    bounds = (f" between {low:g} and {high:g}" if low is not None and high is not None else
              f" >= {low:g}" if low is not None else f" <= {high:g}" if high is not None else "")
    allowed = f"{field} must be {kind}{bounds}"
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{allowed}, got {value!r}")
    if integer and value != int(value):
        raise ValueError(f"{allowed}, got {value!r} (not a whole number)")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{allowed}, got {value!r}")
    return int(value) if integer else float(value)


class _Checked:
    """Mixin: preprocess = check_number with the component's label and range.

    No ``__init__`` here: Gradio builds the front-end config from the signature of the
    component's ``__init__``, so the subclasses keep Gradio's own.
    """

    integer = False  # whole numbers only (IntSlider, IntNumber)

    def get_block_name(self) -> str:
        """Render with the Gradio parent's front-end component ("slider", "number")."""
        gradio_parent = next(c for c in type(self).__mro__ if c.__module__.startswith("gradio."))
        return gradio_parent.__name__.lower()

    def preprocess(self, payload):
        try:
            return check_number(payload, self.label or "value", self.minimum, self.maximum,
                                integer=self.integer)
        except ValueError as err:
            raise gr.Error(str(err), print_exception=False) from err

    def api_info(self) -> dict:
        info = dict(super().api_info())
        if self.integer:
            info["type"] = "integer"
        return info


class Slider(_Checked, gr.Slider):
    """``gr.Slider`` with named range errors."""


class IntSlider(Slider):
    """``gr.Slider`` for whole numbers: fractions are refused, not rounded."""

    integer = True


class Number(_Checked, gr.Number):
    """``gr.Number`` with named range errors."""


class IntNumber(Number):
    """``gr.Number`` for whole numbers: fractions are refused, not rounded."""

    integer = True
