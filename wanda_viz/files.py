"""Files: atomic JSON writes, checks up front, JSON indexes that heal, and the one file hash.

``file_sha256`` is the one content hash of a file (GGUF float copies, model fingerprints): memoised
in memory per (path, size, mtime) and, with ``memo_dir``, in ``memo_dir/file_hashes.json`` across
processes, so a large weight file is read once.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

__all__ = ["write_json_atomic", "check_writable", "read_json_dict", "file_sha256"]

logger = logging.getLogger(__name__)
_SHA_MEMO: dict[str, str] = {}   # "path|mtime_ns|size" -> sha256, this process


def read_json_dict(path: Path) -> dict:
    """A JSON object on disk, or {} when it is absent or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        logger.warning("rebuilding unreadable cache index %s (%s)", path, err)
        return {}
    if not isinstance(data, dict):
        logger.warning("rebuilding cache index %s (not a JSON object)", path)
        return {}
    return data


def file_sha256(path: str | os.PathLike, memo_dir: str | os.PathLike | None = None) -> str:
    """SHA-256 of a file's content, memoised by path + mtime + size (see the module docstring)."""
    file = Path(path).resolve()
    info = file.stat()
    memo_key = f"{file}|{info.st_mtime_ns}|{info.st_size}"
    memo_path = Path(memo_dir) / "file_hashes.json" if memo_dir is not None else None
    memo = read_json_dict(memo_path) if memo_path is not None else {}
    if memo_key in memo:
        return memo[memo_key]
    if memo_key not in _SHA_MEMO:
        digest = hashlib.sha256()
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                digest.update(chunk)
        _SHA_MEMO[memo_key] = digest.hexdigest()
    if memo_path is not None:
        memo[memo_key] = _SHA_MEMO[memo_key]
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(memo_path, memo)
    return _SHA_MEMO[memo_key]


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
