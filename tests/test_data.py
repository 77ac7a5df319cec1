"""Data resolution and samplers: explicit path > data_dir argument > $WANDA_VIZ_DATA > hub, clear
errors when offline, and the reference samplers (Python ``random`` seeded with ``seed``).

The hub is never contacted: ``datasets.load_dataset`` is monkeypatched in every hub-path test.
"""
from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import datasets
import pytest
import torch

import wanda_viz.data as data_module
from helpers import make_tokenizer, random_text
from wanda_viz.data import (BUNDLED_EVAL, DATA_ENV, DataUnavailableError, get_calibration_ids, get_eval_ids,
                            list_text_files, load_c4_documents, load_wikitext2_text,
                            read_text_file, resolve_data_dir, sample_calibration_windows,
                            sample_document_windows, tokenize_text)


@pytest.fixture
def tokenizer():
    return make_tokenizer()


@pytest.fixture
def no_hub(monkeypatch):
    """The hub probe says offline and any hub access fails; the data folder variable is unset."""
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'wikitext' on the Hub (offline)")
    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setattr(data_module, "hub_reachable", lambda: False)
    monkeypatch.delenv(DATA_ENV, raising=False)


def _wikitext_dir(root: Path, text: str) -> Path:
    (root / "wikitext-2-raw").mkdir(parents=True)
    (root / "wikitext-2-raw" / "wiki.test.raw").write_text(text, encoding="utf-8")
    return root


def test_data_dir_argument_beats_environment(tmp_path, no_hub, monkeypatch):
    argument = _wikitext_dir(tmp_path / "argument", "from the argument")
    environment = _wikitext_dir(tmp_path / "environment", "from the environment")
    monkeypatch.setenv(DATA_ENV, str(environment))
    assert load_wikitext2_text("test", data_dir=argument) == "from the argument"
    assert load_wikitext2_text("test") == "from the environment"
    assert resolve_data_dir() == environment


def test_explicit_path_beats_data_dir(tmp_path, tokenizer, no_hub, monkeypatch):
    data = _wikitext_dir(tmp_path / "data", random_text(300, seed=1))
    monkeypatch.setenv(DATA_ENV, str(data))
    explicit = tmp_path / "mine.txt"
    explicit.write_text(random_text(300, seed=2), encoding="utf-8")
    ids, label = get_eval_ids(tokenizer, source=str(explicit), data_dir=data)
    assert label == "mine.txt"
    assert torch.equal(ids, tokenize_text(tokenizer, explicit.read_text()))


def test_relative_file_is_looked_up_in_data_dir(tmp_path, tokenizer, no_hub):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "book.txt").write_text(random_text(400), encoding="utf-8")
    ids, info = get_calibration_ids(tokenizer, source="corpus/book.txt", n_samples=3, seq_len=8,
                                    data_dir=tmp_path)
    assert ids.shape == (3, 8) and info["source"] == "corpus/book.txt"
    assert list_text_files(tmp_path) == [tmp_path / "corpus" / "book.txt"]


def test_hub_is_used_only_when_nothing_is_local(monkeypatch):
    monkeypatch.setattr(data_module, "hub_reachable", lambda: True)
    calls = []

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return {"text": ["a", "", "b"]}

    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert load_wikitext2_text("test") == "a\n\n\n\nb"  # reference: "\n\n".join(rows)
    assert calls == [("wikitext", "wikitext-2-raw-v1", "test")]


def test_environment_beats_hub(tmp_path, no_hub, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(_wikitext_dir(tmp_path, "local text")))
    assert load_wikitext2_text("test") == "local text"  # no_hub would raise otherwise


def test_offline_with_nothing_local_names_what_is_missing(no_hub, tokenizer):
    with pytest.raises(DataUnavailableError, match="WikiText-2 raw test") as info:
        load_wikitext2_text("test")
    assert DATA_ENV in str(info.value) and BUNDLED_EVAL in str(info.value)
    with pytest.raises(DataUnavailableError, match="WikiText-2 raw train"):
        get_calibration_ids(tokenizer, source="wikitext2", n_samples=2, seq_len=8)
    with pytest.raises(DataUnavailableError, match="C4"):
        load_c4_documents(10)


def test_data_dir_without_the_split_falls_back_to_hub(data_dir, no_hub):
    # The shared folder has the test and validation splits, not train.
    with pytest.raises(DataUnavailableError, match="WikiText-2 raw train"):
        load_wikitext2_text("train", data_dir=data_dir)


def test_missing_data_dir_and_file(tmp_path):
    with pytest.raises(DataUnavailableError, match="does not exist"):
        resolve_data_dir(tmp_path / "nope")
    with pytest.raises(DataUnavailableError, match="does not exist"):
        read_text_file(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match="split"):
        load_wikitext2_text("dev", data_dir=tmp_path)


class _LengthTokenizer:
    """Stands in for a tokenizer: one 'token' holding the text length (no 1 MB tokenization)."""

    def __call__(self, text, return_tensors=None):
        return SimpleNamespace(input_ids=torch.tensor([[len(text)]]))


def test_local_wikitext_used_from_data_dir(data_dir, no_hub):
    ids, label = get_eval_ids(_LengthTokenizer(), source="wikitext2", data_dir=data_dir)
    raw = (data_dir / "wikitext-2-raw" / "wiki.test.raw").read_text(encoding="utf-8")
    assert label == "WikiText-2 raw test"
    assert ids.tolist() == [[len(raw)]]
    valid = load_wikitext2_text("validation", data_dir=data_dir)
    assert valid == (data_dir / "wikitext-2-raw" / "wiki.valid.raw").read_text(encoding="utf-8")


def test_too_short_text_raises(tokenizer):
    with pytest.raises(ValueError, match="needs more than seq_len = 8"):
        get_calibration_ids(tokenizer, text="the of and to in", n_samples=2, seq_len=8)
    with pytest.raises(ValueError, match="needs more than"):
        sample_calibration_windows(torch.arange(8), 1, 8)
    # seq_len + 1 tokens is enough for the reference (randint(0, 0)): only the window at 0.
    assert torch.equal(sample_calibration_windows(torch.arange(9), 3, 8),
                       torch.arange(8).expand(3, 8))


def test_empty_text_raises(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="empty"):
        tokenize_text(tokenizer, "  \n ")
    with pytest.raises(ValueError, match="empty"):
        get_calibration_ids(tokenizer, text="", n_samples=1, seq_len=4)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        read_text_file(empty)


def test_exactly_one_calibration_source(tokenizer):
    with pytest.raises(ValueError, match="exactly one"):
        get_calibration_ids(tokenizer)
    with pytest.raises(ValueError, match="exactly one"):
        get_calibration_ids(tokenizer, source="wikitext2", text="the of")


def test_pasted_text_windows_and_description(tokenizer):
    text = random_text(500)
    ids, info = get_calibration_ids(tokenizer, text=text, n_samples=5, seq_len=16, seed=3)
    full = tokenize_text(tokenizer, text)
    random.seed(3)
    starts = [random.randint(0, full.shape[1] - 16 - 1) for _ in range(5)]
    assert torch.equal(ids, torch.cat([full[:, i:i + 16] for i in starts]))
    assert info == {"source": f"pasted text ({len(text)} characters)", "n_samples": 5,
                    "seq_len": 16, "seed": 3}


def test_document_sampler_matches_reference_c4_loop(tokenizer):
    docs = [random_text(n, seed=n) for n in (3, 40, 5, 60, 25, 2, 80)]
    ours = sample_document_windows(docs, tokenizer, n_samples=6, seq_len=20, seed=0)
    # lib/data.py get_c4: draw documents until one is longer than seq_len, then a window.
    random.seed(0)
    expected = []
    for _ in range(6):
        while True:
            enc = tokenizer(docs[random.randint(0, len(docs) - 1)], return_tensors="pt").input_ids
            if enc.shape[1] > 20:
                break
        i = random.randint(0, enc.shape[1] - 20 - 1)
        expected.append(enc[:, i:i + 20])
    assert torch.equal(ours, torch.cat(expected))


def test_document_sampler_gives_up_with_a_message(tokenizer):
    with pytest.raises(ValueError, match="no document is longer"):
        sample_document_windows(["the of", "and"], tokenizer, n_samples=1, seq_len=20)


def test_random_bytes_are_not_text(tmp_path):
    noise = tmp_path / "upload.txt"
    rng = random.Random(0)
    noise.write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    with pytest.raises(ValueError, match="not UTF-8 text"):
        read_text_file(noise, what="the uploaded file 'upload.txt'")


def test_mostly_control_characters_are_not_text(tmp_path):
    binary = tmp_path / "binary.txt"  # valid UTF-8, but a binary format's control bytes
    binary.write_bytes(b"\x00\x01\x02\x03PK\x05\x06" * 200 + b"some words")
    with pytest.raises(ValueError, match="is not text: .* control"):
        read_text_file(binary)


def test_prose_with_a_bom_tabs_and_a_few_odd_characters_is_text(tmp_path):
    text = "Chapter 1\tThe start.\r\nIt was a \u201cdark\u201d night.\n" * 50 + "\x0c"
    path = tmp_path / "book.txt"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert read_text_file(path) == text


def test_uploaded_text_is_named_as_an_upload(tokenizer):
    text = random_text(400)
    _ids, info = get_calibration_ids(tokenizer, text=text, n_samples=2, seq_len=8,
                                     text_label="uploaded file notes.txt")
    assert info["source"] == "uploaded file notes.txt"
    _ids, info = get_calibration_ids(tokenizer, text=text, n_samples=2, seq_len=8)
    assert info["source"].startswith("pasted text")
    assert get_eval_ids(tokenizer, text=text, text_label="uploaded file e.txt")[1] == \
        "uploaded file e.txt"
