"""Train the tiny LLaMA that ships in `assets/demo-model`, so the app works offline.

A byte-level BPE tokenizer and a small pre-norm LLaMA (RMSNorm, RoPE, SwiGLU, tied embeddings)
are trained from scratch on English prose with AdamW, linear warmup and cosine decay to the
budget. The loop follows karpathy/nanoGPT train.py; the model is `transformers.LlamaForCausalLM`
so the dashboard loads it like any hub checkpoint. Norm and embedding weights get no weight decay:
small LLaMAs trained this way grow the few large-magnitude residual features that make Wanda beat
magnitude pruning (Sun et al. 2023, https://arxiv.org/abs/2306.11695).

Example:
    python scripts/train_demo_model.py --data-dir /work/shared/data --time-budget 90
    python scripts/train_demo_model.py --data-dir /work/shared/data --time-budget 90 --resume
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling helper modules
import demo_checkpoint  # noqa: E402
import demo_corpus  # noqa: E402
import demo_export  # noqa: E402

__all__ = ["TrainConfig", "TrainState", "build_model", "lr_at", "train", "run", "main"]

logger = logging.getLogger("train_demo_model")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHAPE_FIELDS = ("vocab_size", "hidden_size", "n_layers", "n_heads", "intermediate_size", "seq_len")


@dataclass
class TrainConfig:
    """Everything that defines a run; defaults are the shipped demo model (~4.3M params)."""

    data_dir: str
    out_dir: str = str(REPO_ROOT / "assets" / "demo-model")
    ckpt_dir: str = str(REPO_ROOT / "runs" / "demo-train")  # /runs/ is git-ignored
    seed: int = 0
    vocab_size: int = 4096
    hidden_size: int = 256
    n_layers: int = 4
    n_heads: int = 4  # head_dim 64
    intermediate_size: int = 704  # 2.75 x hidden, a multiple of 64 so 2:4 and 4:8 fit every row
    seq_len: int = 512
    batch_size: int = 8  # 4096 tokens per step
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine ends at lr * min_lr_ratio
    warmup_steps: int = 200
    weight_decay: float = 0.1  # linear weights only; never norms or embeddings
    grad_clip: float = 1.0
    max_tokens: int | None = None
    time_budget_min: float | None = None  # minutes; the schedule decays to whichever budget binds first
    stop_at_step: int | None = None  # stop without changing the schedule (split a run into sessions)
    ckpt_every_min: float = 10.0
    log_every: int = 25
    holdout_frac: float = 0.01
    threads: int = 2
    periodic_eval_windows: int = 16
    resume: bool = False

    def __post_init__(self) -> None:
        if self.max_tokens is None and self.time_budget_min is None:
            raise ValueError("set max_tokens and/or time_budget_min")
        for name in ("hidden_size", "intermediate_size", "vocab_size"):
            if getattr(self, name) % 8:
                raise ValueError(f"{name} must be a multiple of 8 for N:M pruning, got {getattr(self, name)}")
        if self.hidden_size % self.n_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by n_heads {self.n_heads}")


@dataclass
class TrainState:
    """Progress counters saved in every checkpoint; (epoch, cursor) is the data position."""

    step: int = 0
    tokens_seen: int = 0
    elapsed_s: float = 0.0
    epoch: int = 0
    cursor: int = 0
    losses: list[float] = field(default_factory=list)  # one per step
    evals: list[list[float]] = field(default_factory=list)  # [step, held-out ppl]


# -----------------------------------------------------------------------------
# data, model, optimizer


def build_model(cfg: TrainConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """A fresh pre-norm LLaMA with tied embeddings and no dropout, initialised from `cfg.seed`."""
    vocab_size = max(cfg.vocab_size, math.ceil(len(tokenizer) / 64) * 64)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        max_position_embeddings=cfg.seq_len,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(cfg.seed)  # transformers initialises weights from the global RNG
    return LlamaForCausalLM(config)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on linear weights only (not RMSNorm gains, not embeddings)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():  # tied lm_head appears once, as embed_tokens
        (decay if param.ndim >= 2 and "embed" not in name else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)


def progress(state: TrainState, cfg: TrainConfig) -> float:
    """Fraction of the budget used: the larger of the token and the time fractions."""
    fractions = [0.0]
    if cfg.max_tokens:
        fractions.append(state.tokens_seen / cfg.max_tokens)
    if cfg.time_budget_min:
        fractions.append(state.elapsed_s / (cfg.time_budget_min * 60))
    return max(fractions)


def lr_at(step: int, frac: float, cfg: TrainConfig) -> float:
    """Linear warmup over `warmup_steps`, then cosine from `lr` to `lr * min_lr_ratio` at frac=1."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0)))
    return cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine)


# -----------------------------------------------------------------------------
# training loop


def _save(cfg: TrainConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
          state: TrainState) -> None:
    """Checkpoint the run into `cfg.ckpt_dir`."""
    demo_checkpoint.save_checkpoint(cfg.ckpt_dir, model, optimizer, state=asdict(state), config=asdict(cfg))


def _log_progress(state: TrainState, cfg: TrainConfig, lr: float, session: tuple[float, int]) -> None:
    """Log loss, learning rate, this session's tokens/s and the ETA."""
    start_time, start_tokens = session
    tok_s = (state.tokens_seen - start_tokens) / max(time.perf_counter() - start_time, 1e-9)
    frac = progress(state, cfg)
    recent = state.losses[-cfg.log_every:]
    eta_min = (1.0 - frac) / max(frac, 1e-9) * state.elapsed_s / 60
    logger.info("step %d | tokens %.2fM | loss %.3f | lr %.2e | %.0f tok/s | %.1f%% | eta %.1f min",
                state.step, state.tokens_seen / 1e6, sum(recent) / len(recent), lr, tok_s,
                100 * frac, eta_min)


def train(cfg: TrainConfig) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast, TrainState, torch.Tensor]:
    """Run (or resume) training until the budget or `stop_at_step`; checkpoint at the end.

    Returns:
        The fp32 model, the tokenizer, the final state and the held-out windows `(n, seq_len)`.
    """
    torch.set_num_threads(cfg.threads)
    tokenizer, train_ids, heldout_ids = demo_corpus.prepare_data(
        cfg.data_dir, Path(cfg.ckpt_dir) / "data", vocab_size=cfg.vocab_size, holdout_frac=cfg.holdout_frac)
    heldout = demo_corpus.eval_windows(heldout_ids, cfg.seq_len)  # (n_windows, seq_len)
    model = build_model(cfg, tokenizer)
    optimizer = make_optimizer(model, cfg)
    state = TrainState()
    if cfg.resume:
        saved = demo_checkpoint.load_checkpoint(cfg.ckpt_dir, model, optimizer, config=asdict(cfg),
                                                must_match=SHAPE_FIELDS + ("seed",))
        state = TrainState(**saved)
    logger.info("model: %d params; %d train tokens", model.num_parameters(), train_ids.numel())
    model.train()
    session = (time.perf_counter(), state.tokens_seen)
    clock, last_ckpt = time.perf_counter(), time.perf_counter()
    while progress(state, cfg) < 1.0 and (cfg.stop_at_step is None or state.step < cfg.stop_at_step):
        lr = lr_at(state.step, progress(state, cfg), cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch, (state.epoch, state.cursor) = demo_corpus.next_batch(
            train_ids, (state.epoch, state.cursor),
            seq_len=cfg.seq_len, batch_size=cfg.batch_size, seed=cfg.seed)  # (B, T)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        now = time.perf_counter()
        state.elapsed_s += now - clock
        clock = now
        state.step += 1
        state.tokens_seen += batch.numel()
        state.losses.append(loss.item())
        if state.step % cfg.log_every == 0:
            _log_progress(state, cfg, lr, session)
        if now - last_ckpt > cfg.ckpt_every_min * 60:
            ppl = demo_export.compute_perplexity(model, heldout[: cfg.periodic_eval_windows])
            state.evals.append([state.step, ppl])
            logger.info("step %d | held-out ppl (first %d windows) %.2f",
                        state.step, cfg.periodic_eval_windows, ppl)
            _save(cfg, model, optimizer, state)
            last_ckpt = clock = time.perf_counter()  # eval and saving do not eat the time budget
    _save(cfg, model, optimizer, state)
    return model, tokenizer, state, heldout


def run(cfg: TrainConfig, command: str = "") -> dict[str, Any]:
    """Train, export to `cfg.out_dir`, reload the export, evaluate it and write `training_log.json`."""
    model, tokenizer, state, heldout = train(cfg)
    weights = demo_export.export_model(model, tokenizer, cfg.out_dir)
    exported, exported_tokenizer = demo_export.load_exported(cfg.out_dir)
    ppl = demo_export.compute_perplexity(exported, heldout)
    sample = demo_export.generate_sample(exported, exported_tokenizer, "Once upon a time", seed=cfg.seed)
    logger.info("held-out ppl %.2f over %d windows; sample: %r", ppl, heldout.shape[0], sample)
    tail = state.losses[-50:] or [float("nan")]
    record = {
        "command": command,
        "tokens_seen": state.tokens_seen,
        "steps": state.step,
        "epochs_completed": state.epoch,
        "train_wall_time_s": round(state.elapsed_s, 1),
        "final_train_loss": round(sum(tail) / len(tail), 4),
        "heldout_ppl": round(ppl, 3),
        "heldout_tokens": heldout.numel(),
        "periodic_heldout_ppl": state.evals,
        "params": exported.num_parameters(),
        "weights_bytes": weights.stat().st_size,
        "shape": {name: getattr(cfg, name) for name in SHAPE_FIELDS},
        "config": asdict(cfg),
        "sample": sample,
        "torch_threads": torch.get_num_threads(),
    }
    demo_export.write_training_log(cfg.out_dir, record)
    return record


# -----------------------------------------------------------------------------
# command line


def _parse_int(text: str) -> int:
    """Parse an integer, also written as 2e6 or 2_000_000."""
    return int(float(text))


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Build a `TrainConfig` from the command line (data dir from --data-dir or $WANDA_VIZ_DATA)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("WANDA_VIZ_DATA"),
                        help="folder whose corpus/*.txt are the training text (default: $WANDA_VIZ_DATA)")
    parser.add_argument("--out", dest="out_dir", help=f"exported folder (default: {TrainConfig.out_dir})")
    parser.add_argument("--time-budget", dest="time_budget_min", type=float,
                        help="training wall time in minutes; the LR schedule decays to it")
    parser.add_argument("--resume", action="store_true", help="continue from <ckpt-dir>/checkpoint.pt")
    skip = {"data_dir", "out_dir", "time_budget_min", "resume"}
    for f in fields(TrainConfig):
        if f.name not in skip:
            kind = float if "float" in str(f.type) else _parse_int if "int" in str(f.type) else str
            parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind,
                                help=f"default: {f.default}")
    args = parser.parse_args(argv)
    if not args.data_dir:
        parser.error("pass --data-dir or set WANDA_VIZ_DATA")
    given = {k: v for k, v in vars(args).items() if v is not None}
    try:
        return TrainConfig(**given)
    except ValueError as err:
        parser.error(str(err))


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = parse_args(argv)
    os.environ.setdefault("RAYON_NUM_THREADS", str(cfg.threads))  # tokenizers' thread pool
    command = shlex.join(["python"] + sys.argv if argv is None else ["python", __file__, *argv])
    record = run(cfg, command=command)
    logger.info("done: %d tokens, held-out ppl %.2f", record["tokens_seen"], record["heldout_ppl"])


if __name__ == "__main__":
    main()
