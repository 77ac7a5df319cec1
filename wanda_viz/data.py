"""Text -> token ids: calibration windows and evaluation text, reproducing the reference samplers.

Resolution order for named datasets (never a silent fallback to other data):
  1. an explicit file path;
  2. the data folder: ``data_dir`` argument, else the ``WANDA_VIZ_DATA`` environment variable
     (CI points it at ``../shared/data``), holding ``wikitext-2-raw/wiki.{test,valid,train}.raw``;
  3. the Hugging Face ``datasets`` hub, when the (remembered, ~2 s) probe says it is reachable;
  4. else ``DataUnavailableError`` saying what is missing and naming the bundled data.

Bundled data (``assets/data/``, CC BY-SA 3.0, see its README): prefixes of WikiText-2 raw
validation and test, selected by name (``BUNDLED_CALIB``, ``BUNDLED_EVAL``). They are the
*default* (``default_calibration_source``, ``default_eval_source``) when no data folder holds
WikiText-2 and the hub is unreachable; a caller that names another source gets that source or an
error, never the bundled text in its place. Every label names the source actually used.

Samplers follow the Wanda/SparseGPT reference code (lib/data.py): Python's ``random`` seeded with
``seed`` so that windows match the reference bit for bit for the same text and tokenizer.
"""
from __future__ import annotations

import logging
import os
import re
import random
from pathlib import Path

import torch

from .hub import hub_reachable

__all__ = [
    "DATA_ENV", "CALIB_SOURCES", "EVAL_SOURCES", "BUNDLED_DATA_DIR", "BUNDLED_CALIB",
    "BUNDLED_EVAL", "BUNDLED_SOURCES", "default_calibration_source", "default_eval_source",
    "source_label", "check_source", "DataUnavailableError", "resolve_data_dir",
    "read_text_file", "load_wikitext2_text", "load_c4_documents", "tokenize_text",
    "sample_calibration_windows", "sample_document_windows", "get_calibration_ids",
    "get_eval_ids", "list_text_files",
]

logger = logging.getLogger(__name__)

DATA_ENV = "WANDA_VIZ_DATA"
BUNDLED_DATA_DIR = Path(__file__).resolve().parent.parent / "assets" / "data"
BUNDLED_CALIB = "bundled-wikitext2-valid"
BUNDLED_EVAL = "bundled-wikitext2-test"
# name -> (file in assets/data, caption label)
BUNDLED_SOURCES = {
    BUNDLED_CALIB: ("wikitext-2-raw-valid-slice.txt",
                    "WikiText-2 raw validation, bundled slice (first 40 articles)"),
    BUNDLED_EVAL: ("wikitext-2-raw-test-slice.txt",
                   "WikiText-2 raw test, bundled slice (first 34 articles)"),
}
CALIB_SOURCES = ("wikitext2", "wikitext2-valid", "c4", BUNDLED_CALIB, BUNDLED_EVAL)  # + files
EVAL_SOURCES = ("wikitext2", "wikitext2-valid", BUNDLED_EVAL, BUNDLED_CALIB)  # wikitext2 = test
_LABELS = {"wikitext2": "WikiText-2 raw test", "wikitext2-valid": "WikiText-2 raw validation"}
_WIKITEXT_FILES = {"test": "wiki.test.raw", "validation": "wiki.valid.raw", "train": "wiki.train.raw"}
_C4_SHARD = "en/c4-train.00000-of-01024.json.gz"  # the reference's calibration shard


class DataUnavailableError(FileNotFoundError):
    """Requested data is neither local nor reachable; the message says what to provide."""


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The data folder: the explicit argument, else $WANDA_VIZ_DATA, else None."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_ENV) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise DataUnavailableError(f"data folder {str(path)!r} does not exist")
    return path


# Control characters that never occur in prose (tab, newline and carriage return are allowed),
# plus U+FFFD, the replacement character of a broken decode.
_NOT_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")
MAX_NON_TEXT_SHARE = 0.01


def check_text(text: str, what: str = "text") -> str:
    """``text`` unchanged, or a ValueError when it is empty or mostly not printable characters."""
    if not text.strip():
        raise ValueError(f"{what} is empty")
    bad = len(_NOT_TEXT.findall(text))
    if bad > MAX_NON_TEXT_SHARE * len(text):
        raise ValueError(f"{what} is not text: {bad / len(text):.0%} of its characters are control "
                         "or unreadable characters; use a plain UTF-8 .txt file")
    return text


def read_text_file(path: str | os.PathLike, what: str | None = None) -> str:
    """Read a UTF-8 text file; a clear error if it is missing, empty, not UTF-8 or not text."""
    file = Path(path).expanduser()
    what = what or f"text file {str(file)!r}"
    if not file.is_file():
        raise DataUnavailableError(f"{what} does not exist")
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{what} is not UTF-8 text (undecodable byte at offset {err.start}); "
                         "use a plain UTF-8 .txt file") from err
    return check_text(text, what)


def list_text_files(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Every .txt/.raw file under the data folder (for pickers in the UI and CLI)."""
    root = resolve_data_dir(data_dir)
    if root is None:
        return []
    return sorted(p for p in root.rglob("*") if p.suffix in (".txt", ".raw") and p.is_file())


def _hub_error(what: str, err: Exception | None = None) -> DataUnavailableError:
    reason = f" ({type(err).__name__})" if err is not None else ""
    return DataUnavailableError(
        f"{what} is not in the data folder (set {DATA_ENV} or pass a data folder) and the "
        f"datasets hub is unreachable{reason}; choose the bundled data ({BUNDLED_CALIB} for "
        f"calibration, {BUNDLED_EVAL} for evaluation) or paste or upload text")


def _local_wikitext(split: str, data_dir) -> Path | None:
    root = resolve_data_dir(data_dir)
    if root is None:
        return None
    for sub in ("wikitext-2-raw", "."):
        local = root / sub / _WIKITEXT_FILES[split]
        if local.is_file():
            return local
    return None


def default_calibration_source(data_dir: str | os.PathLike | None = None) -> str:
    """WikiText-2 raw train (the reference) when the data folder or the hub has it, else the
    data folder's validation split, else the bundled validation slice (offline, no data)."""
    if _local_wikitext("train", data_dir) is not None:
        return "wikitext2"
    if _local_wikitext("validation", data_dir) is not None:
        return "wikitext2-valid"
    return "wikitext2" if hub_reachable() else BUNDLED_CALIB


def default_eval_source(data_dir: str | os.PathLike | None = None) -> str:
    """WikiText-2 raw test (reference) from the data folder or the hub, else the bundled slice."""
    if _local_wikitext("test", data_dir) is not None or hub_reachable():
        return "wikitext2"
    return BUNDLED_EVAL


def source_label(source: str) -> str:
    """Caption text for a named source (a file path is shown by its name)."""
    if source in BUNDLED_SOURCES:
        return BUNDLED_SOURCES[source][1]
    if source == "c4":
        return "C4 (en, train shard 00000-of-01024)"
    return _LABELS.get(source, Path(str(source)).name)


def load_bundled_text(name: str) -> str:
    """The text of a bundled source (``BUNDLED_CALIB`` or ``BUNDLED_EVAL``)."""
    if name not in BUNDLED_SOURCES:
        raise ValueError(f"bundled sources are {', '.join(BUNDLED_SOURCES)}; got {name!r}")
    return read_text_file(BUNDLED_DATA_DIR / BUNDLED_SOURCES[name][0])


def _wikitext_file_or_hub(split: str, data_dir) -> Path | None:
    """The local raw file of ``split``, or None when the hub must serve it; an error when neither
    can (the remembered probe answers in ~2 s once, not after the hub client's retries)."""
    local = _local_wikitext(split, data_dir)
    if local is None and not hub_reachable():
        raise _hub_error(f"WikiText-2 raw {split}")
    return local


def _wikitext_split(source: str, evaluation: bool) -> str | None:
    """The WikiText-2 split a named source means ("wikitext2": train to calibrate, test to
    evaluate, as in the reference code), or None for other sources."""
    return {"wikitext2": "test" if evaluation else "train",
            "wikitext2-valid": "validation"}.get(source)


def load_wikitext2_text(split: str = "test", data_dir: str | os.PathLike | None = None) -> str:
    """WikiText-2 raw ``split`` ("test", "validation", "train") as one string.

    A local raw file is used as is; the hub version is ``"\\n\\n".join(rows)`` (reference protocol).
    """
    if split not in _WIKITEXT_FILES:
        raise ValueError(f"split must be one of {', '.join(_WIKITEXT_FILES)}, got {split!r}")
    local = _wikitext_file_or_hub(split, data_dir)
    if local is not None:
        return read_text_file(local)
    try:
        from datasets import load_dataset
        rows = load_dataset("wikitext", "wikitext-2-raw-v1", split=split)["text"]
    except (OSError, ValueError, ImportError) as err:
        raise _hub_error(f"WikiText-2 raw {split}", err) from err
    return "\n\n".join(rows)


def load_c4_documents(n_docs: int | None = None) -> list[str]:
    """Documents of C4 (en, train shard 00000-of-01024) from the hub: the reference source."""
    if not hub_reachable():
        raise _hub_error("C4")
    try:
        from datasets import load_dataset
        docs = load_dataset("allenai/c4", data_files={"train": _C4_SHARD}, split="train")
    except (OSError, ValueError, ImportError) as err:
        raise _hub_error("C4", err) from err
    texts = docs["text"]
    return list(texts if n_docs is None else texts[:n_docs])


def tokenize_text(tokenizer, text: str) -> torch.Tensor:
    """Tokenize the WHOLE text at once, as the reference does: LongTensor (1, n_tokens)."""
    if not text or not text.strip():
        raise ValueError("the text is empty")
    return tokenizer(text, return_tensors="pt").input_ids


def sample_calibration_windows(ids: torch.Tensor, n_samples: int, seq_len: int,
                               seed: int = 0) -> torch.Tensor:
    """The reference sampler for one long text: ``n_samples`` random windows of ``seq_len``.

    Args:
        ids: (1, n_tokens) or (n_tokens,) token ids of the whole text.
    Returns:
        LongTensor (n_samples, seq_len). Windows may overlap (as in the reference).
    """
    ids = ids.reshape(1, -1)
    n_tokens = ids.shape[1]
    if n_tokens < seq_len + 1:  # the reference's randint(0, n_tokens - seq_len - 1) needs >= 0
        raise ValueError(f"the calibration text has {n_tokens} tokens; it needs more than "
                         f"seq_len = {seq_len} (use more text or a shorter seq_len)")
    rng = random.Random(seed)  # same stream as random.seed(seed); random.randint(...)
    starts = [rng.randint(0, n_tokens - seq_len - 1) for _ in range(n_samples)]
    return torch.cat([ids[:, i:i + seq_len] for i in starts], dim=0)


def sample_document_windows(docs: list[str], tokenizer, n_samples: int, seq_len: int,
                            seed: int = 0) -> torch.Tensor:
    """The reference C4 sampler: pick random documents longer than ``seq_len``, one window each."""
    rng = random.Random(seed)
    max_draws = 100 * len(docs) + 1000  # the reference loops forever; we give up with a message
    windows = []
    for _ in range(n_samples):
        for _draw in range(max_draws):
            doc_ids = tokenizer(docs[rng.randint(0, len(docs) - 1)], return_tensors="pt").input_ids
            if doc_ids.shape[1] > seq_len:
                break
        else:
            raise ValueError(f"no document is longer than seq_len = {seq_len} tokens")
        i = rng.randint(0, doc_ids.shape[1] - seq_len - 1)
        windows.append(doc_ids[:, i:i + seq_len])
    return torch.cat(windows, dim=0)


def _source_text(source: str, data_dir, evaluation: bool = False) -> str:
    """The raw text of a named source or a file (absolute, or relative to the data folder)."""
    split = _wikitext_split(source, evaluation)
    if split is not None:
        return load_wikitext2_text(split, data_dir)
    if source in BUNDLED_SOURCES:
        return load_bundled_text(source)
    path = Path(source).expanduser()
    if not path.is_absolute() and not path.exists():
        root = resolve_data_dir(data_dir)
        path = root / source if root is not None and (root / source).exists() else path
    return read_text_file(path)


def check_source(source: str, data_dir: str | os.PathLike | None = None, *,
                 evaluation: bool = False) -> None:
    """Fail now, before any model work, when ``source`` cannot be read.

    Cheap: hub datasets are only probed (``hub_reachable``), local files are read and checked.
    ``evaluation``: "wikitext2" means the test split (the perplexity protocol), not train.
    Raises the same ``DataUnavailableError`` / ``ValueError`` that loading would raise later.
    """
    split = _wikitext_split(source, evaluation)
    if split is not None:
        _wikitext_file_or_hub(split, data_dir)
    elif source == "c4":
        if not hub_reachable():
            raise _hub_error("C4")
    else:
        _source_text(source, data_dir)  # bundled text or a file: local, read and checked


def get_calibration_ids(tokenizer, *, source: str | None = None, text: str | None = None,
                        n_samples: int = 128, seq_len: int = 2048, seed: int = 0,
                        data_dir: str | os.PathLike | None = None,
                        text_label: str | None = None) -> tuple[torch.Tensor, dict]:
    """Calibration windows from a named dataset, a text file, or text passed in.

    Args:
        source: "wikitext2" (raw train, the reference's choice), "wikitext2-valid", "c4",
            ``BUNDLED_CALIB`` (offline, no data folder needed), or a text file path
            (absolute, or relative to the data folder). Exclusive with ``text``.
        text: raw text to sample from (pasted or uploaded by the user).
        text_label: how captions name ``text`` (default "pasted text (<n> characters)").
    Returns:
        (LongTensor (n_samples, seq_len), description dict for the protocol caption).
    """
    if (source is None) == (text is None):
        raise ValueError("give exactly one calibration source: a dataset name, a file, or text")
    if source == "c4":
        ids = sample_document_windows(load_c4_documents(), tokenizer, n_samples, seq_len, seed)
    else:
        raw = text if text is not None else _source_text(source, data_dir)
        ids = sample_calibration_windows(tokenize_text(tokenizer, raw), n_samples, seq_len, seed)
    label = source if source is not None else (text_label or _pasted_label(text))
    description = {"source": label, "n_samples": n_samples, "seq_len": seq_len, "seed": seed}
    return ids, description


def _pasted_label(text: str) -> str:
    return f"pasted text ({len(text)} characters)"


def get_eval_ids(tokenizer, *, source: str | None = "wikitext2", text: str | None = None,
                 data_dir: str | os.PathLike | None = None,
                 text_label: str | None = None) -> tuple[torch.Tensor, str]:
    """The evaluation text as (1, n_tokens) ids, and its label (names the source used).

    ``source``: "wikitext2" (raw test, the reference protocol), "wikitext2-valid",
    ``BUNDLED_EVAL`` (a prefix of the raw test split, shipped with the package) or a file path.
    """
    if text is not None:
        return tokenize_text(tokenizer, text), text_label or _pasted_label(text)
    if source is None:
        raise ValueError("give an evaluation source (dataset name or file) or text")
    raw = _source_text(str(source), data_dir, evaluation=True)
    return tokenize_text(tokenizer, raw), source_label(str(source))
