"""Corpus, tokenizer and batching for the embedded demo model (see train_demo_model.py).

Reads plain-text prose files, holds out the tail of every file for evaluation, trains a GPT-2
style byte-level BPE tokenizer with the `tokenizers` library, and serves fixed-length training
windows in a seeded order that can be resumed from a (epoch, cursor) position, so a restarted run
sees exactly the batches an uninterrupted one would (nanoGPT's "poor man's data loader", made
resumable).

WikiText is the evaluation set of the dashboard, so any file whose name mentions it is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

__all__ = [
    "EOS_TOKEN",
    "list_corpus_files",
    "split_holdout",
    "read_corpus",
    "train_tokenizer",
    "encode_documents",
    "eval_windows",
    "epoch_window_starts",
    "next_batch",
    "prepare_data",
]

logger = logging.getLogger(__name__)

EOS_TOKEN = "<|endoftext|>"  # one special token serves as bos, eos and pad (GPT-2 convention)
_ENCODE_BLOCK_CHARS = 64_000  # encode in blocks cut at newlines so encode_batch can use threads


def list_corpus_files(data_dir: str | Path) -> list[Path]:
    """Return the sorted `*.txt` files of `<data_dir>/corpus` (or of `data_dir` if it has no `corpus/`).

    Raises:
        FileNotFoundError: if no text file is found.
        ValueError: if a file looks like WikiText, which is reserved for evaluation.
    """
    root = Path(data_dir)
    corpus = root / "corpus" if (root / "corpus").is_dir() else root
    files = sorted(corpus.glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no *.txt files in {corpus}")
    for path in files:
        if "wiki" in path.name.lower():
            raise ValueError(f"refusing to train on {path}: WikiText is the evaluation set")
    return files


def split_holdout(text: str, holdout_frac: float) -> tuple[str, str]:
    """Split `text` into (train, heldout), the held-out part being the last `holdout_frac` of it.

    The cut moves back to the previous newline so no line is split; it is deterministic.
    """
    if not 0.0 <= holdout_frac < 1.0:
        raise ValueError(f"holdout_frac must be in [0, 1), got {holdout_frac}")
    cut = int(len(text) * (1.0 - holdout_frac))
    newline = text.rfind("\n", 0, cut)
    if newline > 0:
        cut = newline + 1
    return text[:cut], text[cut:]


def read_corpus(files: list[Path], holdout_frac: float) -> tuple[list[str], list[str]]:
    """Read every file and return (train_docs, heldout_docs), one document per file."""
    train_docs, heldout_docs = [], []
    for path in files:
        text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
        train, heldout = split_holdout(text, holdout_frac)
        train_docs.append(train)
        heldout_docs.append(heldout)
    n_chars = sum(map(len, train_docs))
    logger.info("read %d files: %d train chars, %d held-out chars",
                len(files), n_chars, sum(map(len, heldout_docs)))
    return train_docs, heldout_docs


def _blocks(text: str, block_chars: int = _ENCODE_BLOCK_CHARS) -> list[str]:
    """Cut `text` into blocks of about `block_chars`, each ending at a newline."""
    blocks, start = [], 0
    while start < len(text):
        end = text.find("\n", start + block_chars)
        end = len(text) if end < 0 else end + 1
        blocks.append(text[start:end])
        start = end
    return blocks


def train_tokenizer(docs: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer (GPT-2 pre-tokenizer and decoder) on `docs`.

    Args:
        docs: training texts; the held-out slices must not be passed here.
        vocab_size: target size including the 256 byte symbols and `EOS_TOKEN`.

    Returns:
        A `PreTrainedTokenizerFast` whose bos, eos and pad token are `EOS_TOKEN`.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((block for doc in docs for block in _blocks(doc)), trainer=trainer)
    logger.info("trained byte-level BPE tokenizer: %d tokens", tok.get_vocab_size())
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS_TOKEN, eos_token=EOS_TOKEN, pad_token=EOS_TOKEN,
        model_max_length=1_000_000,
    )


def encode_documents(tokenizer: PreTrainedTokenizerFast, docs: list[str]) -> torch.Tensor:
    """Encode `docs` into one stream `[eos, doc0, eos, doc1, eos, ...]`; returns int32 `(n_tokens,)`."""
    eos = tokenizer.eos_token_id
    stream: list[int] = [eos]
    for doc in docs:
        for ids in tokenizer(_blocks(doc), add_special_tokens=False)["input_ids"]:
            stream.extend(ids)
        stream.append(eos)
    return torch.tensor(stream, dtype=torch.int32)


def eval_windows(ids: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Cut a token stream into non-overlapping windows: `(n_windows, seq_len)` int64, tail dropped."""
    n_windows = ids.numel() // seq_len
    if n_windows == 0:
        raise ValueError(f"held-out text has {ids.numel()} tokens, fewer than seq_len={seq_len}")
    return ids[: n_windows * seq_len].view(n_windows, seq_len).long()


def epoch_window_starts(n_tokens: int, seq_len: int, seed: int, epoch: int) -> torch.Tensor:
    """Start offsets of the training windows of `epoch`, in a seeded random order.

    Each epoch shifts the window grid by a different offset so that windows straddle different
    boundaries from one epoch to the next. Pure function of its arguments, hence resumable.
    """
    offset = (epoch * 97) % seq_len
    n_windows = (n_tokens - offset) // seq_len
    if n_windows <= 0:
        raise ValueError(f"training stream has {n_tokens} tokens, fewer than seq_len={seq_len}")
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n_windows, generator=generator)
    return offset + order * seq_len  # (n_windows,)


def next_batch(
    ids: torch.Tensor, position: tuple[int, int], *, seq_len: int, batch_size: int, seed: int
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Return the batch at data `position` = (epoch, cursor) and the position after it.

    Args:
        ids: training token stream, `(n_tokens,)`.
        position: epoch number and index of the next window in that epoch's order.

    Returns:
        `(batch_size, seq_len)` int64 input ids (labels are the same ids, shifted in the model),
        and the next position; an epoch's last partial batch is skipped.
    """
    epoch, cursor = position
    starts = epoch_window_starts(ids.numel(), seq_len, seed, epoch)
    if cursor + batch_size > starts.numel():
        epoch, cursor = epoch + 1, 0
        starts = epoch_window_starts(ids.numel(), seq_len, seed, epoch)
        logger.info("starting epoch %d", epoch)
    rows = [ids[s : s + seq_len] for s in starts[cursor : cursor + batch_size].tolist()]
    return torch.stack(rows).long(), (epoch, cursor + batch_size)


def prepare_data(
    data_dir: str | Path, cache_dir: str | Path, *, vocab_size: int, holdout_frac: float
) -> tuple[PreTrainedTokenizerFast, torch.Tensor, torch.Tensor]:
    """Train (or reload from `cache_dir`) the tokenizer and encode the train / held-out streams.

    The cache is reused only if the file names and sizes, vocab size and held-out fraction match.

    Returns:
        tokenizer, train ids `(n_train,)` int32, held-out ids `(n_heldout,)` int32.
    """
    files = list_corpus_files(data_dir)
    meta = {"files": [[p.name, p.stat().st_size] for p in files],
            "vocab_size": vocab_size, "holdout_frac": holdout_frac}
    cache_dir = Path(cache_dir)
    cache = cache_dir / "tokens.pt"
    if cache.exists():
        cached = torch.load(cache, weights_only=True)
        if cached["meta"] == meta:
            logger.info("reusing tokenizer and tokens from %s", cache_dir)
            tokenizer = PreTrainedTokenizerFast.from_pretrained(cache_dir / "tokenizer")
            return tokenizer, cached["train"], cached["heldout"]
    train_docs, heldout_docs = read_corpus(files, holdout_frac)
    tokenizer = train_tokenizer(train_docs, vocab_size)
    train_ids = encode_documents(tokenizer, train_docs)
    heldout_ids = encode_documents(tokenizer, heldout_docs)
    logger.info("tokens: %d train, %d held-out", train_ids.numel(), heldout_ids.numel())
    cache_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(cache_dir / "tokenizer")
    torch.save({"meta": meta, "train": train_ids, "heldout": heldout_ids}, cache)
    return tokenizer, train_ids, heldout_ids
