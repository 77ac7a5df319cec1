"""Launch the dashboard in-process on a free port for the client and browser tests."""
from __future__ import annotations

import contextlib
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
    ``fresh``: as on a fresh machine: no data folder, no host model, the app's own defaults."""
    monkeypatch = pytest.MonkeyPatch()
    if fresh:
        monkeypatch.delenv("WANDA_VIZ_DATA", raising=False)
        monkeypatch.delenv("WANDA_VIZ_MODEL", raising=False)
    elif tiny_model:
        monkeypatch.setenv("WANDA_VIZ_MODEL", str(save_ui_checkpoint(root / "model")))
        monkeypatch.setenv("WANDA_VIZ_DATA", str(write_tiny_data(root / "data")))
    monkeypatch.setenv("WANDA_VIZ_SWEEP_CACHE", str(root / "sweeps"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    from wanda_viz.ui import build_demo
    from wanda_viz.service.cache import MODELS
    MODELS.clear()
    demo = build_demo()
    port = free_port()
    demo.queue(default_concurrency_limit=1).launch(
        prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
        MODELS.clear()
        monkeypatch.undo()
