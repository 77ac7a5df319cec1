"""Inputs whose errors name the field and its allowed values, for the UI and the API.

Gradio's own checks say "Value 1.5 is greater than maximum value 0.95." or "Value: x is not in the
list of choices: [...]" without the field, let ``null`` through the API to an opaque "upstream
Gradio app has raised an exception", and silently round 8.7 windows to 9. The components here are
drop-in replacements (same front end) that check the value first: a number of the right kind in
the range, a choice (or list of choices) among the component's own, or else ``Invalid`` with a
message such as "calibration windows must be a whole number between 1 and 32, got 8.7".

Why a value and not an exception: Gradio runs ``preprocess`` once more inside an event's
``validator=`` phase, before the event is queued, and an exception there reaches an API client as
a bare "400 Bad Request" (and is printed). So ``preprocess`` returns ``Invalid``; the event's
validator (``ui/validation.py``) refuses it with the message before the queue, and ``readable``
refuses it on any other path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import gradio as gr

__all__ = ["Invalid", "check_number", "check_choice", "Slider", "IntSlider", "Number",
           "IntNumber", "Checkbox", "Radio", "Dropdown", "CheckboxGroup"]


@dataclass(frozen=True)
class Invalid:
    """A value a field refused; ``message`` names the field and what is allowed."""

    message: str


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


def _listed(choices: list) -> str:
    return ", ".join(str(c) for c in choices)


def check_choice(value, field: str, choices: list, *, multiple: bool = False):
    """``value`` when it is one of ``choices`` (a list of them if ``multiple``).

    Raises:
        ValueError: naming ``field`` and the choices.
    """
    if multiple:
        if not isinstance(value, list):
            raise ValueError(f"{field} must be a list of values from: {_listed(choices)}; "
                             f"got {value!r}")
        wrong = [v for v in value if isinstance(v, bool) or v not in choices]
        if wrong:
            raise ValueError(f"{field}: {_listed(wrong)} not among the choices "
                             f"{_listed(choices)}")
        return value
    if isinstance(value, bool) or value not in choices:
        raise ValueError(f"{field} must be one of: {_listed(choices)}; got {value!r}")
    return value


class _Field:
    """Mixin: ``preprocess`` checks the payload first and returns ``Invalid`` when it fails.

    No ``__init__`` here: Gradio builds the front-end config from the signature of the
    component's ``__init__``, so the subclasses keep Gradio's own.
    """

    def get_block_name(self) -> str:
        """Render with the Gradio parent's front-end component ("slider", "radio", ...)."""
        gradio_parent = next(c for c in type(self).__mro__ if c.__module__.startswith("gradio."))
        return gradio_parent.__name__.lower()

    def field_name(self) -> str:
        """How messages name this input: its label."""
        return getattr(self, "label", None) or "value"

    def check(self, payload):
        raise NotImplementedError

    def preprocess(self, payload):
        try:
            return self.check(payload)
        except ValueError as err:
            return Invalid(str(err))


class _Numeric(_Field):
    integer = False  # whole numbers only (IntSlider, IntNumber)

    def check(self, payload):
        return check_number(payload, self.field_name(), self.minimum, self.maximum,
                            integer=self.integer)

    def api_info(self) -> dict:
        info = dict(super().api_info())
        if self.integer:
            info["type"] = "integer"
        return info


class Slider(_Numeric, gr.Slider):
    """``gr.Slider`` with named range errors."""


class IntSlider(Slider):
    """``gr.Slider`` for whole numbers: fractions are refused, not rounded."""

    integer = True


class Number(_Numeric, gr.Number):
    """``gr.Number`` with named range errors."""


class IntNumber(Number):
    """``gr.Number`` for whole numbers: fractions are refused, not rounded."""

    integer = True


class Checkbox(_Field, gr.Checkbox):
    """``gr.Checkbox`` that refuses anything but true or false."""

    def check(self, payload):
        if not isinstance(payload, bool):
            raise ValueError(f"{self.field_name()} must be true or false, got {payload!r}")
        return payload


class _Choice(_Field):
    """A choice among the component's own choices (custom values allowed only if the
    component allows them: then any text, or nothing, passes and the handler checks it)."""

    multiple = False

    def check(self, payload):
        if getattr(self, "allow_custom_value", False):
            if payload is not None and not isinstance(payload, str):
                raise ValueError(f"{self.field_name()} must be text, got {payload!r}")
            return payload
        check_choice(payload, self.field_name(), [value for _, value in self.choices],
                     multiple=self.multiple)
        return super(_Field, self).preprocess(payload)


class Radio(_Choice, gr.Radio):
    """``gr.Radio`` with named choice errors."""


class Dropdown(_Choice, gr.Dropdown):
    """``gr.Dropdown`` (single choice) with named choice errors."""


class CheckboxGroup(_Choice, gr.CheckboxGroup):
    """``gr.CheckboxGroup`` with named errors: ``null``, a non-list or an unknown value."""

    multiple = True
