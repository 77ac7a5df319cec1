"""Test helpers (plain functions; the fixtures built on them are in conftest.py).

* ``save_tiny_model(path, family, seed, tokenizer=..., **config)`` is THE checkpoint builder: a
  tiny random causal LM from ``wanda_viz.testing`` saved with an offline tokenizer, so that
  ``load_model``, the CLI and the dashboard run end to end on CPU. Three tokenizers: word-level
  over ``WORDS`` (default), word-level over ``SENTENCES`` and a small BPE one.
* ``write_tiny_data(folder)``: a data folder with synthetic WikiText-2 raw files.
* ``SETUP`` / ``PRUNE`` / ``prune_with_ui``: tab 1's values and its Prune button, for the
  dashboard tests.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from wanda_viz.testing import TINY_VOCAB, make_tiny_model

__all__ = ["WORDS", "SENTENCES", "SETUP", "PRUNE", "make_tokenizer", "make_sentence_tokenizer",
           "make_bpe_tokenizer", "save_tiny_model", "save_sentence_llama", "save_ui_checkpoint",
           "write_tiny_data", "synthetic_text", "documented_endpoints", "write_text",
           "random_text", "prunable_zero_count", "prune_with_ui", "dense_weights"]

WORDS = ("the of and to in a is that for it as was with be by on not he i this are or his from "
         "at which but have an they you were her she there had one all we can their has been "
         "if more when will would who so no out up into do time two may first them than other "
         "new some could these what said its over only very then also after . ,").split()
SPECIALS = ["[UNK]", "[EOS]"]
SENTENCES = ("the cat sat on the mat . a dog ran in the park , and it was good . "
             "she said that the old man saw a bird fly over the river ; then it rained .")
UI_WORDS = ("the cat sat on a mat while an old dog slept near the warm fire and "
            "children read stories about kings queens rivers mountains and distant stars").split()
# Tab 1's values for the dashboard tests (the app finds the tiny checkpoint via WANDA_VIZ_MODEL).
SETUP = dict(model_choice="embedded demo model", device="cpu", dtype="float32",
             calib_source="wikitext2-valid", calib_text="", calib_file=None, n_samples=4,
             seq_len=32, seed=0, eval_source="wikitext2", eval_windows=2)
PRUNE = dict(method="wanda", sparsity=0.5, structure="unstructured", group="default",
             owl=False)


# -- tokenizers ------------------------------------------------------------------------------------

def _word_tokenizer(words: list[str], unk: str, eos: str) -> PreTrainedTokenizerFast:
    vocab = {token: i for i, token in enumerate([unk, eos, *words])}
    assert len(vocab) <= TINY_VOCAB
    backend = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token=unk, eos_token=eos,
                                   pad_token=eos)


def make_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over WORDS (vocab < the tiny models' 99 ids), built offline."""
    return _word_tokenizer(WORDS, *SPECIALS)


def make_sentence_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over SENTENCES: id 0 <unk>, 1 <eos>."""
    return _word_tokenizer(sorted(set(SENTENCES.split())), "<unk>", "<eos>")


def synthetic_text(n_words: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(UI_WORDS) for _ in range(12)) + " ."
             for _ in range(n_words // 12)]
    return "\n".join(lines) + "\n"


def make_bpe_tokenizer() -> PreTrainedTokenizerFast:
    """A small BPE tokenizer (96 tokens) trained offline on the synthetic WikiText text."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator([synthetic_text(600, 0)], trainers.BpeTrainer(
        vocab_size=96, special_tokens=["<|endoftext|>", "<unk>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   unk_token="<unk>")


# -- checkpoints and data --------------------------------------------------------------------------

def save_tiny_model(path: Path, family: str = "llama", seed: int = 0, *,
                    tokenizer: PreTrainedTokenizerFast | None = None, **config) -> Path:
    """Save a tiny random ``family`` model (config fields overridable) and a tokenizer
    (default: the WORDS tokenizer) into ``path``: the one checkpoint builder of the tests."""
    make_tiny_model(family, seed, **config).save_pretrained(path)
    (tokenizer or make_tokenizer()).save_pretrained(path)
    return path


def save_sentence_llama(folder: Path, seed: int = 0) -> Path:
    """Tiny LLaMA with the SENTENCES tokenizer (ids: 0 <unk>, 1 <eos> = bos = pad)."""
    tokenizer = make_sentence_tokenizer()
    return save_tiny_model(folder, "llama", seed, tokenizer=tokenizer, vocab_size=len(tokenizer),
                           eos_token_id=1, pad_token_id=1, bos_token_id=1)


def save_ui_checkpoint(folder: Path) -> Path:
    """The dashboard tests' checkpoint: tiny LLaMA (context 256) with the BPE tokenizer."""
    return save_tiny_model(folder, "llama", tokenizer=make_bpe_tokenizer(), vocab_size=128,
                           max_position_embeddings=256)


def write_tiny_data(folder: Path) -> Path:
    """A data folder with synthetic ``wikitext-2-raw/wiki.{valid,test}.raw`` files."""
    raw = folder / "wikitext-2-raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "wiki.valid.raw").write_text(synthetic_text(3000, 1), encoding="utf-8")
    (raw / "wiki.test.raw").write_text(synthetic_text(3000, 2), encoding="utf-8")
    return folder


def random_text(n_words: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def official_and_our_windows(n_samples: int, seq_len: int):
    """The same calibration windows twice: the official loader's list of (input, target) pairs
    (``reference_impl.get_wikitext2``) and our (n_samples, seq_len) ids, on one random text."""
    import reference_impl as ref
    from wanda_viz.data import get_calibration_ids
    tokenizer = make_tokenizer()
    train = random_text(3000, seed=1)
    loader, _ = ref.get_wikitext2(train, random_text(100, seed=2), n_samples, 0, seq_len,
                                  tokenizer)
    calib_ids, _ = get_calibration_ids(tokenizer, text=train, n_samples=n_samples,
                                       seq_len=seq_len)
    return loader, calib_ids


def write_text(path: Path, n_words: int, seed: int = 0) -> Path:
    path.write_text(random_text(n_words, seed), encoding="utf-8")
    return path


# -- models and the dashboard ----------------------------------------------------------------------

def prunable_zero_count(model: torch.nn.Module) -> int:
    from wanda_viz.layers import find_decoder_layers, find_prunable_layers, weight_matrix
    prefix, blocks = find_decoder_layers(model)
    return sum(int((weight_matrix(layer) == 0).sum())
               for layer in find_prunable_layers(blocks, prefix).values())


def prune_with_ui(session=None, **changes) -> dict:
    """Tab 1's Prune button with SETUP / PRUNE, any value changed by keyword."""
    from wanda_viz.service import Session
    from wanda_viz.ui.tabs import model
    setup = {**SETUP, **{k: v for k, v in changes.items() if k in SETUP}}
    prune = {**PRUNE, **{k: v for k, v in changes.items() if k in PRUNE}}
    return model.on_prune(session or Session(), **setup, **prune)


def dense_weights() -> dict:
    """The prunable weights of the one model in the shared cache (a copy)."""
    from wanda_viz.layers import WeightBackup
    from wanda_viz.service.cache import MODELS
    (entry,) = MODELS._models.values()
    return WeightBackup(entry.model).weights


def documented_endpoints() -> set[str]:
    """The named endpoints each tab module's docstring promises ("Named API endpoint: /x"), and
    the app module's own (/cancel)."""
    import re

    from wanda_viz.ui import app
    found = set()
    for tab in [*app.TABS, app]:
        doc = " ".join((tab.__doc__ or "").split())
        for match in re.finditer(r"Named API endpoints?: ((?:/\w+(?:,? (?:and )?)?)+)", doc):
            found |= set(re.findall(r"/\w+", match.group(1)))
    return found


# -- figures -------------------------------------------------------------------------------------
PLAIN_NUMBER = re.compile(r"^-?(\d{1,3}(,\d{3})*|\d+)(\.\d+)?(e-?\d+)?%?$")  # 0.01, 1,000, 1e-5, 50%
SI_SUFFIX = re.compile(r"\d[munpfkMGTµ]$")


def assert_plain_axes(fig, name: str) -> None:
    """Every axis writes numbers plainly: no SI prefixes (100n, 200µ), log axes with plain
    decade ticks and no minor labels, colour bars with plain ticks."""
    import plotly.graph_objects as go
    layout = fig.layout.to_plotly_json()
    axes = {key: axis for key, axis in layout.items() if re.match(r"^[xy]axis\d*$", key)}
    for axis_name, axis in axes.items():
        assert axis.get("exponentformat") == "none" or axis.get("tickmode") == "array", \
            f"{name}.{axis_name}: Plotly's default writes SI prefixes (100n, 200µ)"
        if axis.get("type") != "log":
            continue
        assert axis.get("tickmode") == "array", f"{name}.{axis_name}: log axis without ticks"
        labels = list(axis.get("ticktext") or [])
        assert labels and len(labels) == len(axis["tickvals"])
        for label in labels:
            assert PLAIN_NUMBER.match(label) and not SI_SUFFIX.search(label), \
                f"{name}.{axis_name}: tick label {label!r} is not a plain number"
        assert not (axis.get("minor") or {}).get("ticklabelmode"), "minor labels on a log axis"
    for trace in fig.data:
        if isinstance(trace, go.Heatmap) and trace.colorbar is not None:
            bar = trace.colorbar
            assert bar.ticktext is not None or bar.tickformat or bar.exponentformat == "none", \
                f"{name}: colour bar without plain ticks"
            for label in bar.ticktext or ():  # numbers plainly; category names as they are
                assert PLAIN_NUMBER.match(label) or not label[:1].isdigit(), \
                    f"{name}: colour bar label {label!r}"
