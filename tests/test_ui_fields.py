"""Numeric fields: every bad value names the field and its allowed values (UI and API alike)."""
from __future__ import annotations

import math

import gradio as gr
import pytest

from app_server import free_port
from wanda_viz.ui.fields import (Checkbox, CheckboxGroup, Dropdown, IntNumber, IntSlider, Invalid,
                                 Radio, Slider, check_number)


@pytest.mark.parametrize("value, expected", [(1, 1), (32, 32), (8.0, 8)])
def test_whole_numbers_in_range_pass(value, expected):
    result = check_number(value, "n_samples", 1, 32, integer=True)
    assert result == expected and isinstance(result, int)


@pytest.mark.parametrize("value, detail", [
    (8.7, "got 8.7 (not a whole number)"), (0, "got 0"), (33, "got 33"), (None, "got None"),
    ("12", "got '12'"), (True, "got True"), (math.nan, "got nan"), (math.inf, "got inf")])
def test_bad_values_name_the_field_and_the_range(value, detail):
    with pytest.raises(ValueError) as err:
        check_number(value, "n_samples", 1, 32, integer=True)
    assert str(err.value) == f"n_samples must be a whole number between 1 and 32, {detail}"


def test_fractions_allowed_where_the_field_is_not_whole():
    assert check_number(0.55, "Sparsity", 0.0, 0.95) == 0.55
    with pytest.raises(ValueError, match=r"^Sparsity must be a number between 0 and 0.95, got 1.5$"):
        check_number(1.5, "Sparsity", 0.0, 0.95)


def test_components_keep_the_gradio_front_end_and_refuse_with_a_named_message():
    with gr.Blocks():
        slider = IntSlider(1, 32, value=8, step=1, label="n_samples")
        number = IntNumber(0, label="seed", minimum=0)
        plain = Slider(0.0, 0.95, value=0.5, label="Sparsity")
    assert slider.get_block_name() == "slider" and number.get_block_name() == "number"
    # the front end gets Gradio's own props (label, range, value), as for gr.Slider
    config = slider.get_config()
    assert (config["label"], config["minimum"], config["maximum"], config["value"]) == \
        ("n_samples", 1, 32, 8)
    assert plain.get_config()["label"] == "Sparsity" and plain.api_info()["type"] == "number"
    assert slider.api_info()["type"] == "integer"
    assert slider.preprocess(8) == 8
    # refused values come back as Invalid (the event's validator refuses them before the queue)
    assert slider.preprocess(100.5) == Invalid(
        "n_samples must be a whole number between 1 and 32, got 100.5 (not a whole number)")
    assert number.preprocess(None) == Invalid("seed must be a whole number >= 0, got None")


@pytest.mark.parametrize("component, value, message", [
    (lambda: Radio(["magnitude", "wanda"], label="Method"), "foo",
     "Method must be one of: magnitude, wanda; got 'foo'"),
    (lambda: Radio(["magnitude", "wanda"], label="Method"), None,
     "Method must be one of: magnitude, wanda; got None"),
    (lambda: Dropdown(["a", "b"], label="dtype"), 3, "dtype must be one of: a, b; got 3"),
    (lambda: CheckboxGroup([1, 2, 4], label="k"), None,
     "k must be a list of values from: 1, 2, 4; got None"),
    (lambda: CheckboxGroup([1, 2, 4], label="k"), [2.5, 4], "k: 2.5 not among the choices 1, 2, 4"),
    (lambda: CheckboxGroup([0.5, 0.7], label="Sparsities"), "0.5",
     "Sparsities must be a list of values from: 0.5, 0.7; got '0.5'"),
    (lambda: Checkbox(False, label="sample"), None, "sample must be true or false, got None"),
    (lambda: Dropdown([], label="Model", allow_custom_value=True), 5, "Model must be text, got 5"),
])
def test_choice_fields_name_the_field_and_the_choices(component, value, message):
    with gr.Blocks():
        field = component()
    assert field.preprocess(value) == Invalid(message)


def test_choice_fields_pass_good_values_through():
    with gr.Blocks():
        radio = Radio(["magnitude", "wanda"], label="Method")
        group = CheckboxGroup([0.5, 0.7], label="Sparsities")
        custom = Dropdown([], label="Model", allow_custom_value=True)
    assert radio.preprocess("wanda") == "wanda" and group.preprocess([0.7]) == [0.7]
    assert custom.preprocess("gpt2") == "gpt2" and custom.preprocess(None) is None
    assert radio.get_block_name() == "radio" and group.get_block_name() == "checkboxgroup"


def test_api_errors_reach_the_client_with_the_field_name_before_the_queue():
    from gradio_client import Client
    from gradio_client.exceptions import ValidationError

    from wanda_viz.ui.validation import validator
    calls = []
    with gr.Blocks() as demo:
        windows = IntSlider(1, 32, value=8, step=1, label="n_samples")
        out = gr.Number()
        gr.Button().click(lambda n: calls.append(n) or n * 2, windows, out, api_name="double",
                          validator=validator("double", ["n"], []))
    port = free_port()
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port,
                        quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
        assert client.predict(8, api_name="/double") == 16
        for bad in (None, "x", 8.7, 1.5e3):
            with pytest.raises(ValidationError,
                               match="n_samples must be a whole number between 1 and 32"):
                client.predict(bad, api_name="/double")
        assert calls == [8]  # refused requests never reached the handler
    finally:
        demo.close()
