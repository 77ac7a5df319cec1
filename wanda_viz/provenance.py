"""Which code produced a result: the git commit of the checkout, recorded in every saved JSON.

Every number in the docs comes from a committed JSON that names its model, settings and commit;
``source_commit()`` is that commit (``git rev-parse HEAD`` of the repository holding this package,
with a flag when the working tree had uncommitted changes), or None outside a git checkout (an
installed wheel), where the package version is what identifies the code.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["source_commit"]

_REPO = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(_REPO), *args], capture_output=True, text=True,
                              timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def source_commit() -> dict | None:
    """{"commit": sha, "dirty": bool} of the code's git checkout; None without git or a repo."""
    sha = _git("rev-parse", "HEAD")
    if not sha:
        return None
    status = _git("status", "--porcelain", "--untracked-files=no", "--", "wanda_viz")
    return {"commit": sha, "dirty": bool(status)}
