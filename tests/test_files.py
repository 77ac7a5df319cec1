"""Result files: atomic JSON writes and output paths checked before any work."""
from __future__ import annotations

import json
import os

import pytest

from wanda_viz.files import check_writable, write_json_atomic


def test_write_json_atomic_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": 1}, indent=object())  # json.dumps fails mid-way
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_check_writable(tmp_path):
    check_writable(None, tmp_path / "new" / "deeper" / "model", tmp_path / "x.json")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match="is a file, not a folder"):
        check_writable(blocker / "model")
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(OSError, match="is not writable"):
            check_writable(locked / "model")
