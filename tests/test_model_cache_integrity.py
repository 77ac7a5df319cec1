"""The GGUF float-copy cache proves itself (issue 21): a corrupt copy (random bytes inside, size and
header intact) or a truncated one is found at load, deleted and rebuilt with a warning; staging
folders of dead processes are removed; the sweep key covers the float copy that was evaluated.

Fast: the dequantizer is replaced by a writer of a small fake folder (the cache logic does not
depend on what dequantizing produces); the real model's copy is checked in test_real_model.py.
"""
from __future__ import annotations

import logging
import os
import random
import subprocess
import sys

import pytest

import wanda_viz.gguf as gguf

HEADER = b"SAFETENSORS-HEADER" + b"\0" * 46  # stands for the safetensors JSON header


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    """A .gguf file, a cache root and a counting fake dequantizer (1 MB of weights)."""
    monkeypatch.setenv(gguf.MODEL_CACHE_ENV, str(tmp_path / "cache"))
    file = tmp_path / "m.gguf"
    file.write_bytes(b"GGUF weights v1")
    calls = []

    def fake_dequantize(path, staging):
        calls.append(path)
        payload = random.Random(0).randbytes(1 << 20)
        (staging / "model.safetensors").write_bytes(HEADER + payload)
        (staging / "config.json").write_text('{"model_type": "llama"}')
    monkeypatch.setattr(gguf, "_dequantize_to", fake_dequantize)
    return file, calls


def _weights(folder):
    return folder / "model.safetensors"


def test_a_fresh_copy_records_every_file_and_is_reused(fake_gguf):
    file, calls = fake_gguf
    target = gguf.ensure_float_copy(file)
    assert gguf.verify_float_copy(target) is None
    assert gguf.ensure_float_copy(file) == target and len(calls) == 1  # verified, not rebuilt


def test_random_bytes_inside_are_found_and_the_copy_rebuilt(fake_gguf, caplog):
    file, calls = fake_gguf
    target = gguf.ensure_float_copy(file)
    good = _weights(target).read_bytes()
    with open(_weights(target), "r+b") as weights:  # size and header intact, content not
        weights.seek(len(HEADER) + 1000)
        weights.write(random.Random(1).randbytes(4096))
    assert "corrupt" in gguf.verify_float_copy(target)
    with caplog.at_level(logging.WARNING, logger="wanda_viz.gguf"):
        assert gguf.ensure_float_copy(file) == target
    assert len(calls) == 2 and _weights(target).read_bytes() == good
    assert any("corrupt" in r.getMessage() and "dequantizing" in r.getMessage()
               for r in caplog.records)


def test_a_truncated_copy_is_rebuilt_although_its_marker_stands(fake_gguf, caplog):
    file, calls = fake_gguf
    target = gguf.ensure_float_copy(file)
    with open(_weights(target), "r+b") as weights:
        weights.truncate(len(HEADER) + 100)
    with caplog.at_level(logging.WARNING, logger="wanda_viz.gguf"):
        gguf.ensure_float_copy(file)
    assert len(calls) == 2 and gguf.verify_float_copy(target) is None
    assert any("truncated" in r.getMessage() for r in caplog.records)


def test_a_copy_without_content_record_is_rebuilt(fake_gguf):
    """Copies written before the record existed (a bare marker) cannot be verified."""
    file, calls = fake_gguf
    target = gguf.ensure_float_copy(file)
    (target / gguf._COMPLETE).write_text(f"{file.name}\nsha256 abc\n")  # the old marker
    gguf.ensure_float_copy(file)
    assert len(calls) == 2 and gguf.verify_float_copy(target) is None


def test_partial_folders_of_dead_processes_are_removed(fake_gguf):
    file, _calls = fake_gguf
    root = gguf.float_copy_dir(file).parent
    root.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (root / f".partial-{dead}-abc").mkdir()         # a crash during dequantization
    (root / f".partial-{os.getpid()}-xyz").mkdir()  # a live process still dequantizing
    old = root / ".partial-qwerty"                    # an older version's name, hours old
    old.mkdir()
    os.utime(old, (0, 0))
    gguf.ensure_float_copy(file)
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [gguf.float_copy_dir(file).name, f".partial-{os.getpid()}-xyz"])


def test_the_sweep_key_covers_the_float_copy(fake_gguf, monkeypatch):
    """The same GGUF with a different float copy (another dequantizer) gets another key."""
    from wanda_viz.files import file_sha256
    from wanda_viz.points import model_fingerprint
    file, _calls = fake_gguf
    first = model_fingerprint(str(file))["fingerprint"]
    assert first.startswith(f"gguf:{file_sha256(file)}:float:")

    def other_dequantize(path, staging):
        (staging / "model.safetensors").write_bytes(HEADER + b"other weights")
        (staging / "config.json").write_text('{"model_type": "llama"}')
    monkeypatch.setattr(gguf, "_dequantize_to", other_dequantize)
    target = gguf.float_copy_dir(file)
    with open(_weights(target), "r+b") as weights:
        weights.seek(len(HEADER))
        weights.write(b"x")  # found corrupt, rebuilt by the other dequantizer
    assert model_fingerprint(str(file))["fingerprint"] != first
