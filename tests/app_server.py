"""Launch the dashboard in-process on a free port for the client and browser tests; the browser
settings (headless Debian Chromium) and the steps that pace a long job through the shared model's
lock (cancel tests: no sleeps)."""
from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import save_ui_checkpoint, write_tiny_data


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_app(root: Path, *, tiny_model: bool = True, fresh: bool = False) -> Iterator[str]:
    """Serve ``build_demo()`` offline; yields its URL. ``tiny_model``: a tiny checkpoint and a
    synthetic WikiText folder under ``root`` instead of the embedded model and $WANDA_VIZ_DATA.
    ``fresh``: as on a fresh machine: no data folder, no host model, an empty model cache (a GGUF
    default is dequantized on the first click), the app's own defaults."""
    monkeypatch = pytest.MonkeyPatch()
    if fresh:
        monkeypatch.delenv("WANDA_VIZ_DATA", raising=False)
        monkeypatch.delenv("WANDA_VIZ_MODEL", raising=False)
        monkeypatch.setenv("WANDA_VIZ_MODEL_CACHE", str(root / "models"))
    elif tiny_model:
        monkeypatch.setenv("WANDA_VIZ_MODEL", str(save_ui_checkpoint(root / "model")))
        monkeypatch.setenv("WANDA_VIZ_DATA", str(write_tiny_data(root / "data")))
    monkeypatch.setenv("WANDA_VIZ_SWEEP_CACHE", str(root / "sweeps"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    from wanda_viz.ui import build_demo, serve
    from wanda_viz.service.cache import MODELS
    MODELS.clear()
    demo = build_demo()
    port = free_port()
    serve(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
        MODELS.clear()
        monkeypatch.undo()


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# the first prune on 2 shared CPU cores; raise it (seconds) to take screenshots on the real model
TIMEOUT_MS = int(float(os.environ.get("WANDA_VIZ_BROWSER_TIMEOUT_S", "60")) * 1000)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def click(page, name: str) -> None:
    page.get_by_role("button", name=name, exact=True).click()


def handoff() -> None:
    """Let the job waiting for the shared model take it for one step, then hold the model again
    (the lock is first come first served: our next turn is right after the job's step)."""
    from wanda_viz.service.cache import MODELS
    assert MODELS.lock.wait_for_waiters(1, 60)
    MODELS.lock.release()
    MODELS.lock.acquire()


def cached_points(folder: Path) -> list[Path]:
    """The point files of an on-disk point cache."""
    return [p for p in folder.glob("*.json") if p.name != "file_hashes.json"]


def finish_cancelled(running) -> None:
    """Once the job's token is set, give it the model; when we have it back, it has stopped."""
    from wanda_viz.service.cache import MODELS
    from wanda_viz.service.long_jobs import LONG_JOBS
    assert LONG_JOBS.wait_for(lambda jobs: running.token.cancelled, 60)
    MODELS.lock.release()
    MODELS.lock.acquire()  # after the job's cancelled turn
    MODELS.lock.release()
