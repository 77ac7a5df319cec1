"""Test helpers: an offline word-level tokenizer and tiny saved model folders (no downloads).

``save_tiny_model(path, family)`` writes a tiny random causal LM from ``wanda_viz.testing``
together with a word-level tokenizer, so that ``load_model`` and the CLI can be exercised end to
end on CPU; ``write_text(path, n_words)`` writes seeded text made of the tokenizer's words.
"""
from __future__ import annotations

import random
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import PreTrainedTokenizerFast

from conftest import VOCAB, make_tiny_model

__all__ = ["WORDS", "make_tokenizer", "save_tiny_model", "write_text", "random_text"]

WORDS = ("the of and to in a is that for it as was with be by on not he i this are or his from "
         "at which but have an they you were her she there had one all we can their has been "
         "if more when will would who so no out up into do time two may first them than other "
         "new some could these what said its over only very then also after . ,").split()
SPECIALS = ["[UNK]", "[EOS]"]


def make_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over WORDS (vocab < the tiny models' 99 ids), built offline."""
    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    assert len(vocab) <= VOCAB
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]",
                                   eos_token="[EOS]", pad_token="[EOS]")


def random_text(n_words: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def write_text(path: Path, n_words: int, seed: int = 0) -> Path:
    path.write_text(random_text(n_words, seed), encoding="utf-8")
    return path


def save_tiny_model(path: Path, family: str = "llama", seed: int = 0) -> Path:
    """Save a tiny random ``family`` model and the word-level tokenizer into ``path``."""
    model = make_tiny_model(family, seed)
    model.save_pretrained(path)
    make_tokenizer().save_pretrained(path)
    return path


def prunable_zero_count(model: torch.nn.Module) -> int:
    from wanda_viz.layers import find_decoder_layers, find_prunable_layers, weight_matrix
    prefix, blocks = find_decoder_layers(model)
    return sum(int((weight_matrix(layer) == 0).sum())
               for layer in find_prunable_layers(blocks, prefix).values())
