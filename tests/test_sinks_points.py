"""Sinks: all-block interventions, the sliding window, pruning meets sinks, on the point runner.

The sliding-window mask is checked against StreamingLLM's own procedure (token-by-token decoding
with a start+recent KV cache, keys at their original positions); interventions and the changed
points (``PointRunner``) must leave every hook as it was, also on error and cancellation.
"""
from __future__ import annotations

import contextlib

import pytest
import torch
from transformers import DynamicCache

from why_planted import (MASSIVE_CHANNEL, MASSIVE_TOKEN, assert_unchanged, planted_setup,
                         snapshot)
from wanda_viz.analysis.sinks_interventions import all_block_sites, measure_block_means
from wanda_viz.analysis.sinks_points import (TailPerplexity, intervention_changes,
                                             intervention_table, window_change, window_table)
from wanda_viz.analysis.sinks_pruning import (collect_input_peaks, kept_on_massive,
                                              massive_columns, summarize_by_kind)
from wanda_viz.analysis.sinks_run import SinksSpec, run_sinks
from wanda_viz.analysis.sliding_window import (SlidingWindowConfig, restrict_attention,
                                               window_keep)
from wanda_viz.analysis.why import channel_disagreement
from wanda_viz.cancel import Cancelled, CancelToken
from wanda_viz.points import Metric, Perplexity
from wanda_viz.testing import TINY_VOCAB as VOCAB
from wanda_viz.testing import make_tiny_model

FINGERPRINT = {"model": "planted", "fingerprint": "x"}


@pytest.fixture(scope="module")
def setup():
    return planted_setup()


def test_window_keep_hand_example():
    keep = window_keep(6, 2, sink_tokens=1).int()
    assert keep.tolist() == [[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0],
                             [1, 0, 1, 1, 0, 0], [1, 0, 0, 1, 1, 0], [1, 0, 0, 0, 1, 1]]
    assert window_keep(4, None).int().tolist() == torch.ones(4, 4).tril().int().tolist()


@torch.no_grad()
def _streaming_logits(model, ids: torch.Tensor, window: int, sinks: int) -> torch.Tensor:
    """StreamingLLM's evaluation loop: one token at a time, then keep the first ``sinks`` and the
    last ``window - 1`` cache entries (keys keep their original rotary positions)."""
    cache, logits = DynamicCache(), []
    for t in range(ids.shape[1]):
        out = model(ids[:, t:t + 1], cache=cache, use_cache=True,
                    position_ids=torch.tensor([[t]]))
        logits.append(out.logits[0, -1])
        for layer in cache.layers:
            if layer.keys.shape[2] > sinks + window - 1:
                layer.keys = torch.cat([layer.keys[:, :, :sinks],
                                        layer.keys[:, :, -(window - 1):]], dim=2)
                layer.values = torch.cat([layer.values[:, :, :sinks],
                                          layer.values[:, :, -(window - 1):]], dim=2)
    return torch.stack(logits)


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox"])
@pytest.mark.parametrize("sinks", [0, 2])
def test_window_mask_equals_streaming_cache(family, sinks):
    model = make_tiny_model(family)
    ids = torch.randint(0, VOCAB, (1, 14), generator=torch.Generator().manual_seed(3))
    before = snapshot(model)
    with restrict_attention(model, 4, sinks):
        masked = model(ids, use_cache=False).logits[0]
    assert_unchanged(model, before)
    torch.testing.assert_close(masked, _streaming_logits(model, ids, 4, sinks), rtol=1e-4,
                               atol=1e-5)  # measured ~1e-6 (different matmul shapes)
    assert not torch.allclose(masked, model(ids).logits[0], atol=1e-3)  # the window matters


def test_window_table_directions_and_cache(setup, tmp_path, make_runner):
    model, calib, eval_ids, _ = setup
    config = SlidingWindowConfig(windows=(2, 4), sink_tokens=1, chunk_len=16, max_chunks=8)
    runner = make_runner(model, calib, eval_ids, fingerprint=FINGERPRINT, cache_dir=tmp_path)
    table = window_table(runner, config)
    full = table.loc[table["window"].isna(), "perplexity"].item()
    for window in (2, 4):
        rows = table[table["window"] == window].set_index("sink_tokens")["perplexity"]
        assert rows[1] < rows[0]            # keeping the planted first token helps
        assert full < rows[1]
    again = window_table(runner, config)
    assert again["cached"].all() and again["perplexity"].tolist() == table["perplexity"].tolist()
    # the metric's key names the chunks it reads: another chunk length is another point
    other = SlidingWindowConfig(windows=(2, 4), sink_tokens=1, chunk_len=12, max_chunks=8)
    assert runner.key(window_change(2, 1), TailPerplexity(config)) != \
        runner.key(window_change(2, 1), TailPerplexity(other))
    assert runner.key(window_change(2, 1), TailPerplexity(config)) != \
        runner.key(window_change(2, 0), TailPerplexity(config))


@torch.no_grad()
def _block_outputs(model, ids) -> list[torch.Tensor]:
    outputs = []
    handles = [block.register_forward_hook(lambda m, a, out: outputs.append(out[0] if
                                           isinstance(out, tuple) else out))
               for block in model.model.layers]
    try:
        model(ids)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def test_block_means_match_hidden_states(setup):
    model, calib, _, report = setup
    sites = all_block_sites(report)
    assert [s.block_index for s in sites] == [0, 1]
    assert all(s.channels == [MASSIVE_CHANNEL] for s in sites)
    means = measure_block_means(model, calib, sites, batch_size=3)
    hidden = _block_outputs(model, calib)
    for site in means.sites:
        values = hidden[site.block_index][:, :, MASSIVE_CHANNEL]
        massive = values[calib == MASSIVE_TOKEN]   # the planted token in every window
        assert site.counts[MASSIVE_CHANNEL] == massive.numel()
        assert site.means[MASSIVE_CHANNEL] == pytest.approx(float(massive.mean()), rel=1e-5)
        torch.testing.assert_close(means.channel_means[site.block],
                                   hidden[site.block_index].mean(dim=(0, 1)), rtol=1e-4,
                                   atol=1e-5)


def test_interventions_restore_hooks_and_directions(setup, make_runner, tmp_path):
    model, calib, eval_ids, report = setup
    means = measure_block_means(model, calib, all_block_sites(report))
    before = snapshot(model)
    runner = make_runner(model, calib, eval_ids, max_windows=8, fingerprint=FINGERPRINT,
                         cache_dir=tmp_path)
    table = intervention_table(runner, means, seeds=(0, 1))
    assert_unchanged(model, before)
    ppl = {(r.target, r.mode, r.seed if r.seed == r.seed else None): r.perplexity
           for r in table.itertuples()}
    dense = ppl[("dense", "none", None)]
    assert ppl[("massive", "zero", None)] > 1.5 * dense          # zeroing the planted value hurts
    assert ppl[("massive", "mean", None)] == pytest.approx(dense, rel=0.02)  # its mean does not
    massive = table[(table["target"] == "massive") & (table["mode"] == "mean")]
    random = table[table["target"] == "random"]
    assert (random["replaced"] == massive["replaced"].item()).all()   # same number of entries
    assert (random["perplexity"] < ppl[("massive", "zero", None)]).all()
    again = intervention_table(runner, means, seeds=(0, 1))     # every point from the cache
    assert again["cached"].all()
    assert again.drop(columns="cached").equals(table.drop(columns="cached"))
    keys = {runner.key(change) for _, change in intervention_changes(means, (0, 1))}
    assert len(keys) == len(table)                               # one key per point


class _Failing(Metric):
    name, columns = "failing", ("perplexity",)

    def key(self, setup) -> dict:
        return {"metric": self.name}

    def evaluate(self, model, setup, cancel) -> dict:
        raise RuntimeError("metric failed")


class _Cancelling(Perplexity):
    """Cancels while the pass runs: the metric stops before its next window / chunk."""

    def __init__(self, token):
        object.__setattr__(self, "token", token)

    def evaluate(self, model, setup, cancel) -> dict:
        self.token.cancel()
        return super().evaluate(model, setup, cancel)


def test_points_restore_on_error_and_cancel(setup, make_runner):
    model, calib, eval_ids, report = setup
    means = measure_block_means(model, calib, all_block_sites(report))
    before = snapshot(model)
    runner = make_runner(model, calib, eval_ids, max_windows=2)
    changes = [change for _, change in intervention_changes(means, (0,))][1:]
    for change in [*changes, window_change(4, 1)]:
        with pytest.raises(RuntimeError, match="metric failed"):
            runner.run(change, _Failing())
        assert_unchanged(model, before)
    token = CancelToken()
    cancelling = make_runner(model, calib, eval_ids, max_windows=2, cancel=token)
    with pytest.raises(Cancelled):
        cancelling.run(changes[1], _Cancelling(token))
    assert_unchanged(model, before)
    token = CancelToken()
    config = SlidingWindowConfig(windows=(2,), sink_tokens=1, chunk_len=16, max_chunks=2)
    with pytest.raises(Cancelled):   # cancelled before the first chunk of the window metric
        token.cancel()
        TailPerplexity(config).evaluate(model, runner.setup, token)
    assert_unchanged(model, before)


def test_pruning_kept_on_massive_columns():
    model, calib, _, report = planted_setup()   # its own model: the weights are changed below
    modules = dict(model.named_modules())
    layer = "model.layers.1.self_attn.q_proj"
    with torch.no_grad():   # the weights reading the massive channel are the smallest of q_proj
        modules[layer].weight[:, MASSIVE_CHANNEL] = 1e-4
    peaks = collect_input_peaks(model, calib)
    columns = massive_columns(report, peaks)
    assert columns[layer] == ("residual", [MASSIVE_CHANNEL])   # massive at block 0's output
    assert columns["model.layers.0.self_attn.q_proj"] == ("residual", [])
    assert columns["model.layers.1.self_attn.o_proj"][0] == "input"
    table = kept_on_massive(model, report, columns, 0.5)
    row = table.set_index("layer").loc[layer]
    assert row["weights"] == modules[layer].weight.shape[0] and row["kept_magnitude"] == 0
    per_channel = channel_disagreement(modules[layer].weight, report.input_norms[layer].square(),
                                       0.5)
    assert row["kept_wanda"] == per_channel.loc[MASSIVE_CHANNEL, "wanda_only"]
    kinds = summarize_by_kind(table).set_index("kind")
    assert kinds.loc["q_proj", "share_magnitude"] == 0.0
    assert kinds["weights"].sum() == table["weights"].sum()


def test_run_sinks_takes_the_model_per_step(setup, make_runner):
    model, calib, eval_ids, report = setup
    entered = []

    @contextlib.contextmanager
    def hold():
        entered.append(1)
        yield model
    spec = SinksSpec(seeds=(0,), window=SlidingWindowConfig(windows=(2,), sink_tokens=1,
                                                            chunk_len=16, max_chunks=1))
    before = snapshot(model)
    runner = make_runner(model, calib, eval_ids, max_windows=2, model_for_point=hold)
    result = run_sinks(runner, spec, report=report)
    assert_unchanged(model, before)
    # dense passes, massive means, 5 intervention points (dense, massive x 2, random x 2) and
    # 3 window points (full, W=2 with and without the first token)
    assert len(entered) == 1 + 1 + 5 + 3
    assert len(result.interventions) == 5 and len(result.window) == 3
