"""Logs a host can read (issue 21): ``app.py`` sets up logging so that the lines the README
promises (evictions and recomputations of SparseGPT runs' kept weights, refusals) reach stderr,
one line each, without a traceback."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import runpy, torch
runpy.run_path("app.py")  # builds the demo, does not launch (not __main__)
from wanda_viz.service.weights_store import UPDATED_WEIGHTS
UPDATED_WEIGHTS.put("a" * 32, {"w": torch.zeros(300_000)})   # 1.1 MB each, bound 2 MB
UPDATED_WEIGHTS.put("b" * 32, {"w": torch.zeros(300_000)})
from wanda_viz.ui.validation import validator
validator("prune", ["session"], ["n_samples"])(None, n_samples=__import__(
    "wanda_viz.ui.fields", fromlist=["Invalid"]).Invalid("n_samples must be ..."))
"""


def test_app_py_shows_the_documented_lines_on_stderr():
    env = {"WANDA_VIZ_MAX_UPDATED_WEIGHTS_MB": "2", "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if "wanda_viz" in line]
    assert any("INFO wanda_viz.service.weights_store: evicted the updated weights of run aaaaaaaa"
               in line for line in lines), done.stderr[-2000:]
    assert sum("refused before the queue: n_samples must be ..." in line for line in lines) == 1
    assert "Traceback" not in done.stderr
