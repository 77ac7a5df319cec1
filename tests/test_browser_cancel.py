"""Cancel in a real browser (issue 21): the Cancel button and a closed tab stop a running sweep at
its next decoder block or point; the finished points stay on disk; a refused input shows its
message under the field. Headless Chromium as in test_browser.py; the shared model's lock paces
the sweep (no sleeps, see app_server.handoff)."""
from __future__ import annotations

import pytest

from app_server import (CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, cached_points, click,
                        finish_cancelled, handoff, open_tab, serve_app)
from wanda_viz.service.cache import MODELS
from wanda_viz.service.long_jobs import LONG_JOBS
from wanda_viz.ui.tabs.model import COMPARE_BUTTON

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-cancel")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("WANDA_VIZ_MAX_TEXT_CHARS", "100")
    with serve_app(root) as url:
        yield url, root / "sweeps"
    monkeypatch.undo()


@pytest.fixture
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _pruned_page(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    click(page, COMPARE_BUTTON)
    page.get_by_text("Wanda at 50%").first.wait_for()
    # the prune's chained refreshes (tab 3's scores take the model) must be done before the
    # test holds the model and counts the sweep's turns
    open_tab(page, "3. Scores")
    page.locator("text=Spearman >> visible=true").first.wait_for()
    open_tab(page, "5. Perplexity vs sparsity")
    page.get_by_label("0.3").check()  # 3 methods x 2 sparsities + dense: 7 points
    return page


def _start_sweep(page, cache):
    """Click Run with the model held; the sweep computes exactly its dense point."""
    for old in cached_points(cache):
        old.unlink()
    MODELS.lock.acquire()
    click(page, "Run or extend the sweep")
    handoff()  # evaluation ids
    handoff()  # the dense point
    assert MODELS.lock.wait_for_waiters(1, 60)
    (running,) = LONG_JOBS.running()
    return running


def test_the_cancel_button_stops_a_running_sweep(app, browser):
    url, cache = app
    page = _pruned_page(browser, url)
    running = _start_sweep(page, cache)
    click(page, "Cancel")
    page.get_by_text("Cancelled: sweep").wait_for()
    finish_cancelled(running)
    assert len(cached_points(cache)) == 1
    page.close()


def test_a_closed_tab_stops_its_sweep(app, browser):
    url, cache = app
    page = _pruned_page(browser, url)
    running = _start_sweep(page, cache)
    page.close()  # the heartbeat ends: Gradio's unload cancels the session's jobs
    finish_cancelled(running)
    assert len(cached_points(cache)) == 1


def test_a_refused_paste_shows_its_message_under_the_text(app, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app[0])
    page.get_by_text("Calibration and perplexity data").click()  # the accordion
    page.get_by_label("Calibration text", exact=True).click()
    page.get_by_role("option", name="pasted text").click()
    page.get_by_label("Pasted calibration text").fill("word " * 40)
    click(page, COMPARE_BUTTON)
    page.get_by_text("the pasted calibration text has 200 characters; this host accepts at "
                     "most 100 (WANDA_VIZ_MAX_TEXT_CHARS)").wait_for()
    page.close()
