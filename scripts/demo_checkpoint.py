"""Resumable training checkpoints for the demo model (see train_demo_model.py).

One file holds everything needed to continue a run exactly: model and optimizer state, the
progress counters with the data position, the global torch RNG state and the run's config.
It is written to a temporary name and renamed, so an interrupted save never leaves a truncated
checkpoint behind.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["CHECKPOINT_NAME", "save_checkpoint", "load_checkpoint"]

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(
    ckpt_dir: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    state: dict[str, Any],
    config: dict[str, Any],
) -> Path:
    """Atomically write `<ckpt_dir>/checkpoint.pt` and return its path.

    Args:
        state: progress counters (plain ints, floats and lists), including the data position.
        config: the run's settings, checked on resume.
    """
    path = Path(ckpt_dir) / CHECKPOINT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "state": state, "rng": torch.get_rng_state(), "config": config}
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    logger.info("checkpoint: step %d, %d tokens -> %s", state["step"], state["tokens_seen"], path)
    return path


def load_checkpoint(
    ckpt_dir: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    config: dict[str, Any],
    must_match: tuple[str, ...],
) -> dict[str, Any]:
    """Restore model, optimizer and RNG from `<ckpt_dir>/checkpoint.pt`; return the saved state.

    Raises:
        FileNotFoundError: if there is no checkpoint.
        ValueError: if a setting named in `must_match` differs between checkpoint and `config`.
    """
    path = Path(ckpt_dir) / CHECKPOINT_NAME
    if not path.exists():
        raise FileNotFoundError(f"cannot resume: {path} does not exist")
    payload = torch.load(path, weights_only=True)
    for name in must_match:
        if payload["config"][name] != config[name]:
            raise ValueError(f"checkpoint has {name}={payload['config'][name]!r}, run has {config[name]!r}")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["rng"])
    logger.info("resumed from %s at step %d", path, payload["state"]["step"])
    return payload["state"]
