"""Writing result files safely: atomically (never a half-written file) and checked up front."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

__all__ = ["write_json_atomic", "check_writable"]


def write_json_atomic(path: str | os.PathLike, data, *, indent: int = 1) -> None:
    """Write ``data`` as JSON to a temporary file beside ``path``, then rename it into place.

    A crash or a full disk leaves the previous file (or none), never a truncated one.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=indent, default=str), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_writable(*paths: str | os.PathLike | None) -> None:
    """Raise a clear error now when an output file or folder could not be written later.

    A path that exists must be writable; one that does not must have a writable nearest existing
    parent folder (it is created only when the result is written). ``None`` entries are skipped.
    """
    for path in paths:
        if path is None:
            continue
        target = Path(path).expanduser()
        existing = next(p for p in (target, *target.parents) if p.exists())
        if existing == target and target.is_file():
            ok = os.access(target, os.W_OK)
        else:
            folder = existing if existing.is_dir() else None
            ok = folder is not None and _can_create_in(folder)
        if not ok:
            raise OSError(f"cannot write {str(target)!r}: {str(existing)!r} is not writable"
                          if existing.is_dir() or existing == target else
                          f"cannot write {str(target)!r}: {str(existing)!r} is a file, not a folder")


def _can_create_in(folder: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False
