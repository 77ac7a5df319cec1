"""Tests for scripts/train_demo_model.py: a tiny end-to-end run on generated English-like text.

One seeded run (about 60 steps of a 2-layer, 32-wide LLaMA) is shared by the tests through a
module fixture; the resume test repeats it in two sessions and expects the same trajectory.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import demo_corpus  # noqa: E402
import train_demo_model  # noqa: E402

SUBJECTS = ["the old man", "a little girl", "the captain", "my sister", "the gray cat", "Alice"]
VERBS = ["walked to", "looked at", "spoke of", "ran from", "thought about", "smiled at"]
OBJECTS = ["the house", "the river", "a strange letter", "the dark forest", "her mother", "the sea"]
ENDINGS = [".", " and said nothing.", ", for it was late.", " in the morning.", " again."]


def _write_corpus(root: Path, n_files: int = 2, n_sentences: int = 400, seed: int = 0) -> Path:
    """Write `n_files` files of seeded template sentences (about 15 KB each) under root/corpus."""
    rng = random.Random(seed)
    corpus = root / "corpus"
    corpus.mkdir(parents=True)
    for i in range(n_files):
        sentences = [f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} "
                     f"{rng.choice(OBJECTS)}{rng.choice(ENDINGS)}" for _ in range(n_sentences)]
        lines = [" ".join(sentences[j : j + 4]) for j in range(0, n_sentences, 4)]
        (corpus / f"book{i}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def _tiny_config(root: Path, name: str, **overrides) -> train_demo_model.TrainConfig:
    """A tiny, token-budgeted config writing to root/<name>-out and root/<name>-ckpt."""
    settings = dict(
        data_dir=str(root / "data"), out_dir=str(root / f"{name}-out"),
        ckpt_dir=str(root / f"{name}-ckpt"), vocab_size=320, hidden_size=32, n_layers=2,
        n_heads=4, intermediate_size=64, seq_len=32, batch_size=4, lr=1e-2, warmup_steps=5,
        max_tokens=60 * 4 * 32, log_every=10, holdout_frac=0.1, threads=1,
    )
    settings.update(overrides)
    return train_demo_model.TrainConfig(**settings)


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    """train() sets the torch thread count; put it back for the rest of the suite."""
    n_threads = torch.get_num_threads()
    yield
    torch.set_num_threads(n_threads)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One uninterrupted tiny run; returns (root folder, training_log record)."""
    root = tmp_path_factory.mktemp("train_demo")
    _write_corpus(root / "data")
    n_threads = torch.get_num_threads()
    try:  # one thread: a 32-wide model gains nothing from more, and it keeps the test cheap
        record = train_demo_model.run(_tiny_config(root, "full"), command="pytest")
    finally:
        torch.set_num_threads(n_threads)
    return root, record


def test_split_holdout_cuts_at_a_line_boundary() -> None:
    text = "".join(f"line {i}\n" for i in range(100))
    train, heldout = demo_corpus.split_holdout(text, 0.1)
    assert train + heldout == text
    assert train.endswith("\n") and 0 < len(heldout) <= 0.1 * len(text) + 8
    assert demo_corpus.split_holdout(text, 0.1) == (train, heldout)


def test_corpus_listing_refuses_wikitext(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "wiki.train.txt").write_text("x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="WikiText"):
        demo_corpus.list_corpus_files(tmp_path)


def test_batches_are_resumable_from_a_position() -> None:
    ids = torch.arange(1000, dtype=torch.int32)
    first, position = demo_corpus.next_batch(ids, (0, 0), seq_len=10, batch_size=4, seed=0)
    second, _ = demo_corpus.next_batch(ids, position, seq_len=10, batch_size=4, seed=0)
    again, _ = demo_corpus.next_batch(ids, position, seq_len=10, batch_size=4, seed=0)
    assert first.shape == (4, 10) and first.dtype == torch.int64
    assert torch.equal(second, again) and not torch.equal(first, second)


def test_lr_warms_up_then_decays_to_the_floor() -> None:
    cfg = _tiny_config(Path("."), "unused", lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert train_demo_model.lr_at(0, 0.0, cfg) == pytest.approx(0.1)
    assert train_demo_model.lr_at(10, 0.0, cfg) == pytest.approx(1.0)
    assert train_demo_model.lr_at(50, 0.5, cfg) == pytest.approx(0.55)
    assert train_demo_model.lr_at(99, 1.0, cfg) == pytest.approx(0.1)


def test_config_rejects_missing_budget_and_bad_dims() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        _tiny_config(Path("."), "x", max_tokens=None)
    with pytest.raises(ValueError, match="multiple of 8"):
        _tiny_config(Path("."), "x", intermediate_size=60)


def test_cli_needs_a_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDA_VIZ_DATA", raising=False)
    with pytest.raises(SystemExit):
        train_demo_model.parse_args(["--max-tokens", "1e3"])
    monkeypatch.setenv("WANDA_VIZ_DATA", "/some/data")
    cfg = train_demo_model.parse_args(["--max-tokens", "2e3", "--seq-len", "64"])
    assert (cfg.data_dir, cfg.max_tokens, cfg.seq_len) == ("/some/data", 2000, 64)


def test_loss_falls(full_run: tuple[Path, dict]) -> None:
    _, record = full_run
    assert json.loads(json.dumps(record)) == record  # training_log.json holds plain JSON
    assert record["steps"] == 60
    ckpt = torch.load(Path(record["config"]["ckpt_dir"]) / "checkpoint.pt", weights_only=True)
    curve = ckpt["state"]["losses"]
    assert sum(curve[-10:]) / 10 < sum(curve[:5]) / 5 - 1.0  # measured: 5.54 -> 1.86


def test_export_loads_generates_and_is_fp16(full_run: tuple[Path, dict]) -> None:
    root, record = full_run
    out = root / "full-out"
    with safe_open(out / "model.safetensors", framework="pt") as weights:
        dtypes = {weights.get_tensor(name).dtype for name in weights.keys()}
    assert dtypes == {torch.float16}
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.bos_token_id is not None and tokenizer.eos_token_id is not None
    assert model.config.hidden_size % 8 == 0 and model.config.intermediate_size % 8 == 0
    prompt = tokenizer("The old man", return_tensors="pt")
    generated = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert generated.shape[1] > prompt["input_ids"].shape[1]
    log = json.loads((out / "training_log.json").read_text(encoding="utf-8"))
    assert log["tokens_seen"] == record["tokens_seen"] == 60 * 4 * 32
    assert 1.0 < log["heldout_ppl"] < 50.0  # measured 6.1 on this templated text
    assert log["params"] == model.num_parameters()


def test_resume_continues_the_same_run(full_run: tuple[Path, dict]) -> None:
    root, record = full_run
    first = _tiny_config(root, "split", stop_at_step=25, ckpt_every_min=0.0)
    _, _, state, _ = train_demo_model.train(first)
    assert state.step == 25 and len(state.evals) == 25  # ckpt_every_min=0: eval + save every step
    second = _tiny_config(root, "split", resume=True)
    model, _, state, _ = train_demo_model.train(second)
    assert state.step == record["steps"]
    assert state.tokens_seen == record["tokens_seen"]
    full = torch.load(root / "full-ckpt" / "checkpoint.pt", weights_only=True)
    torch.testing.assert_close(torch.tensor(state.losses), torch.tensor(full["state"]["losses"]))
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, full["model"][name])
