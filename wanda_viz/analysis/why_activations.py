"""Why Wanda works: the activation-space intervention on massive activations.

Sun et al. (arXiv 2402.17762, section 3; locuslab/massive-activations ``lib/hook.py``): a forward
hook on the decoder block where massive activations first appear sets them, in its output (the
residual stream), to zero or to their mean over many sequences, and perplexity is measured. The
paper: zero destroys the model, the mean leaves it intact (the activations act as fixed biases).

Here the block and its massive channels come from the activation report
(``find_massive_activations``: ``|h| > 100`` and ``> 1000 x`` the layer median). Positions vary
with the text (first token, delimiters), so an entry of a massive channel counts as massive in a
window when it passes the same two thresholds against that window's median ``|h|`` at the block.
The mean is taken per channel over those entries in the calibration windows. The hook is removed
afterwards, also on error; no weight is touched. Each point is a ``ForwardHooks`` change on the
point runner (``points``), the pattern later all-layer interventions follow.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from ..calibration import stop_forward_at
from ..evaluate import count_eval_windows
from ..layers import model_device
from ..points import Dense, ForwardHooks, PointRunner
from .outliers import ActivationReport, find_massive_activations

__all__ = ["ACTIVATION_COLUMNS", "INTERVENTIONS", "MassiveSites", "massive_sites",
           "flag_massive", "measure_massive_means", "replace_massive_activations",
           "ActivationIntervention", "ActivationSpec", "activation_intervention"]

logger = logging.getLogger(__name__)

# replaced: massive entries overwritten during the evaluation, first_token: those at position 0;
# windows: evaluation windows
ACTIVATION_COLUMNS = ["intervention", "perplexity", "replaced", "first_token", "windows",
                      "cached"]
INTERVENTIONS = ("zero", "mean")


@dataclass
class MassiveSites:
    """Where to intervene: one block, its massive channels, the thresholds and the means."""

    block: str                     # qualified block name, e.g. "model.layers.11"
    block_index: int
    channels: list[int]
    min_abs: float = 100.0
    min_ratio: float = 1000.0
    means: dict[int, float] = field(default_factory=dict)   # channel -> mean massive value
    counts: dict[int, int] = field(default_factory=dict)    # channel -> entries averaged

    def describe(self) -> str:
        means = ", ".join(f"ch {c}: {self.means[c]:.4g} (n={self.counts.get(c, 0)})"
                          for c in self.channels if c in self.means)
        return (f"output of {self.block}, channels {self.channels}, |h| > {self.min_abs:g} and > "
                f"{self.min_ratio:g} x the window's median |h|" + (f"; means {means}" if means else ""))


def massive_sites(report: ActivationReport, *, min_abs: float = 100.0,
                  min_ratio: float = 1000.0) -> MassiveSites:
    """The first block with massive activations and its massive channels (largest first)."""
    massive = find_massive_activations(report, min_abs=min_abs, min_ratio=min_ratio)
    if massive.empty:
        raise ValueError(f"no massive activations (|h| > {min_abs:g} and > {min_ratio:g} x the "
                         "layer median) in this model on these calibration windows")
    first = int(massive["block_index"].min())
    rows = massive[massive["block_index"] == first].sort_values("abs", ascending=False)
    return MassiveSites(block=str(rows["layer"].iloc[0]), block_index=first,
                        channels=list(dict.fromkeys(int(c) for c in rows["channel"])),
                        min_abs=min_abs, min_ratio=min_ratio)


def flag_massive(hidden: torch.Tensor, channels: torch.Tensor, min_abs: float,
                 min_ratio: float) -> torch.Tensor:
    """Bool (b, T, len(channels)): massive entries of ``channels`` in each window's hidden state.

    Args:
        hidden: (b, T, d) block output; the median |h| is taken per window over all T x d.
    """
    magnitude = hidden.detach().float().abs()
    median = magnitude.flatten(1).median(dim=1).values.view(-1, 1, 1)   # (b, 1, 1)
    picked = magnitude[..., channels]                                   # (b, T, c)
    return (picked > min_abs) & (picked > min_ratio * median)


def _hidden_of(output):
    return output[0] if isinstance(output, (tuple, list)) else output


def _block(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        raise ValueError(f"no module named {name!r} in {type(model).__name__}")
    return modules[name]


@torch.no_grad()
def measure_massive_means(model: nn.Module, calib_ids: torch.Tensor, sites: MassiveSites, *,
                          batch_size: int = 8) -> MassiveSites:
    """The mean of each channel's massive entries over the calibration windows (signed).

    Channels that never pass the thresholds in a window are dropped (with a warning).
    """
    channels = torch.tensor(sites.channels)
    sums, counts = torch.zeros(len(channels), dtype=torch.float64), torch.zeros(len(channels))

    def observe(output) -> None:
        hidden = _hidden_of(output)
        flags = flag_massive(hidden, channels.to(hidden.device), sites.min_abs, sites.min_ratio)
        values = hidden[..., channels.to(hidden.device)].double() * flags
        sums.add_(values.sum(dim=(0, 1)).cpu())
        counts.add_(flags.sum(dim=(0, 1)).cpu().float())

    device = model_device(model)
    # The block's output is all we need: each forward pass ends right after the block.
    with stop_forward_at(_block(model, sites.block), observe=observe) as run:
        for batch in calib_ids.split(batch_size):
            run(model, batch.to(device), use_cache=False)
    found = [i for i in range(len(channels)) if counts[i] > 0]
    if len(found) < len(channels):
        logger.warning("channels %s of %s never pass the thresholds per window; not intervened on",
                       [sites.channels[i] for i in range(len(channels)) if counts[i] == 0],
                       sites.block)
    if not found:
        raise ValueError(f"no massive activations per window at {sites.block}")
    kept = [sites.channels[i] for i in found]
    return MassiveSites(sites.block, sites.block_index, kept, sites.min_abs, sites.min_ratio,
                        means={sites.channels[i]: float(sums[i] / counts[i]) for i in found},
                        counts={sites.channels[i]: int(counts[i]) for i in found})


@contextlib.contextmanager
def replace_massive_activations(model: nn.Module, sites: MassiveSites,
                                mode: str) -> Iterator[dict]:
    """While inside the ``with``, massive entries at ``sites`` are set to 0 or to their mean.

    Yields:
        a dict counting ``replaced`` entries (``first_token``: those at position 0) and
        ``windows`` seen. The hook is removed on exit.
    """
    if mode not in INTERVENTIONS:
        raise ValueError(f"mode must be one of {INTERVENTIONS}, got {mode!r}")
    if mode == "mean" and any(c not in sites.means for c in sites.channels):
        raise ValueError("the mean needs measure_massive_means(model, calib_ids, sites) first")
    channels = torch.tensor(sites.channels)
    fill = torch.tensor([sites.means[c] for c in sites.channels]) if mode == "mean" \
        else torch.zeros(len(sites.channels))
    counter = {"replaced": 0, "first_token": 0, "windows": 0}

    def hook(module, inputs, output):
        hidden = _hidden_of(output)
        index = channels.to(hidden.device)
        flags = flag_massive(hidden, index, sites.min_abs, sites.min_ratio)  # (b, T, c)
        changed = hidden.clone()
        changed[..., index] = torch.where(flags, fill.to(hidden.device, hidden.dtype),
                                          hidden[..., index])
        counter["replaced"] += int(flags.sum())
        counter["first_token"] += int(flags[:, 0].sum())
        counter["windows"] += hidden.shape[0]
        if isinstance(output, (tuple, list)):
            return type(output)((changed, *output[1:]))
        return changed

    handle = _block(model, sites.block).register_forward_hook(hook)
    try:
        yield counter
    finally:
        handle.remove()


@dataclass
class ActivationIntervention:
    """Perplexity with massive activations zeroed or set to their mean (``ACTIVATION_COLUMNS``)."""

    table: pd.DataFrame
    sites: MassiveSites
    calibration: str
    eval_protocol: str

    def protocol(self) -> str:
        return (f"massive activations (Sun et al. 2024) at the {self.sites.describe()}; mean over "
                f"the calibration windows ({self.calibration}); perplexity: {self.eval_protocol}")


@dataclass(frozen=True)
class ActivationSpec:
    """Thresholds of a massive activation (Sun et al. 2024): ``|h| > min_abs`` and
    ``|h| > min_ratio x`` the median |h|."""

    min_abs: float = 100.0
    min_ratio: float = 1000.0


def _replace(sites: MassiveSites, mode: str) -> ForwardHooks:
    """The point that sets the massive activations at ``sites`` to zero or to their mean."""
    settings = {"mode": mode, "block": sites.block, "channels": sites.channels,
                "min_abs": sites.min_abs, "min_ratio": sites.min_ratio}
    return ForwardHooks("why-activations", settings,
                        lambda model: replace_massive_activations(model, sites, mode),
                        uses_calibration=True, columns=("replaced", "first_token"))


@torch.no_grad()
def activation_intervention(runner: PointRunner, report: ActivationReport,
                            spec: ActivationSpec = ActivationSpec(), *,
                            dense: dict | None = None) -> ActivationIntervention:
    """Dense perplexity, then with massive activations set to zero, then to their mean.

    Args:
        runner: the point runner of the dense model (its setup's calibration windows give the
            means); every point is a ``ForwardHooks`` change (no weight is touched).
        report: ``collect_activation_report(model, calib_ids)`` of this dense model.
        dense: the dense point's row when already known (``run_why`` passes the weight
            intervention's); None = ``runner.run(Dense())``.
    Returns:
        ActivationIntervention (rows: dense, zero, mean).
    Raises:
        ValueError: no massive activation passes the thresholds.
    """
    setup = runner.setup
    sites = massive_sites(report, min_abs=spec.min_abs, min_ratio=spec.min_ratio)
    with runner.hold() as model:
        sites = measure_massive_means(model, setup.calib_ids, sites, batch_size=setup.batch_size)
    windows = count_eval_windows(setup.eval_ids.numel(), setup.seq_len, setup.max_windows)
    base = dense or runner.run(Dense())
    rows = [{**base, "intervention": "dense", "replaced": 0, "first_token": 0,
             "windows": windows}]
    for mode in INTERVENTIONS:
        rows.append({**runner.run(_replace(sites, mode)), "intervention": mode,
                     "windows": windows})
    shared = setup.protocol_columns()
    return ActivationIntervention(pd.DataFrame(rows, columns=ACTIVATION_COLUMNS), sites,
                                  shared["calibration"], shared["eval_protocol"])
