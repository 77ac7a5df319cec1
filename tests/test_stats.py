"""Calibration statistics: running-mean accumulators against their closed forms.

Wanda's input_sq_norm_j = sum over all tokens of x_tj^2 / n_sequences and SparseGPT's
H = 2 / n_sequences * X^T X (X: all tokens stacked) must not depend on how the sequences were
batched (reference running mean ``s *= n/(n+k); n += k; s += ... / n``).
"""
from __future__ import annotations

import pytest
import torch

from wanda_viz.stats import STATS_DTYPE, CalibrationStats, HessianStats, InputNormStats

N_SEQ, SEQ_LEN, DIM = 6, 5, 8


@pytest.fixture
def inputs() -> torch.Tensor:
    return torch.randn(N_SEQ, SEQ_LEN, DIM, generator=torch.Generator().manual_seed(0))


def _closed_forms(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = inputs.reshape(-1, inputs.shape[-1]).double()  # (n * T, d)
    n = inputs.shape[0]
    return (tokens.square().sum(0) / n).float(), (2 / n * tokens.t() @ tokens).float()


@pytest.mark.parametrize("splits", [[6], [1] * 6, [2, 1, 3], [4, 2]])
def test_accumulators_match_closed_form(inputs, splits):
    norms, hessian = InputNormStats(DIM), HessianStats(DIM)
    for chunk in inputs.split(splits):
        norms.add_batch(chunk)
        hessian.add_batch(chunk)
    expected_norm, expected_hessian = _closed_forms(inputs)
    torch.testing.assert_close(norms.input_sq_norm, expected_norm, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(hessian.hessian, expected_hessian, rtol=1e-5, atol=1e-5)
    assert norms.n_samples == hessian.n_samples == N_SEQ


def test_batched_equals_one_by_one(inputs):
    batched = CalibrationStats(DIM, "cpu", statistics=("hessian",))
    single = CalibrationStats(DIM, "cpu", statistics=("hessian",))
    batched.add_batch(inputs)
    for sequence in inputs:
        single.add_batch(sequence.unsqueeze(0))
    torch.testing.assert_close(batched.input_sq_norm, single.input_sq_norm)
    torch.testing.assert_close(batched.hessian, single.hessian)


def test_two_dim_input_is_one_sequence(inputs):
    flat, nested = InputNormStats(DIM), InputNormStats(DIM)
    flat.add_batch(inputs[0])  # (T, d)
    nested.add_batch(inputs[:1])  # (1, T, d)
    assert flat.n_samples == 1
    torch.testing.assert_close(flat.input_sq_norm, nested.input_sq_norm)


def test_half_inputs_accumulate_in_float32(inputs):
    stats = CalibrationStats(DIM, "cpu", statistics=("hessian",))
    stats.add_batch(inputs.half())
    assert stats.input_sq_norm.dtype == STATS_DTYPE == torch.float32
    assert stats.hessian.dtype == torch.float32
    expected_norm, _ = _closed_forms(inputs.half().float())
    torch.testing.assert_close(stats.input_sq_norm, expected_norm, rtol=1e-4, atol=1e-4)


def test_hessian_is_optional():
    stats = CalibrationStats(DIM, "cpu")
    stats.add_batch(torch.ones(1, 2, DIM))
    assert stats.hessian is None
    assert stats.input_sq_norm.tolist() == [2.0] * DIM


def test_flattened_batch_counts_sequences_when_seq_len_known(inputs):
    """OPT's fc1/fc2 see (batch * seq, d): with seq_len given, that is still batch sequences."""
    flattened = CalibrationStats(DIM, "cpu", statistics=("hessian",), seq_len=SEQ_LEN)
    flattened.add_batch(inputs[:4].reshape(-1, DIM))
    flattened.add_batch(inputs[4:].reshape(-1, DIM))
    expected_norm, expected_hessian = _closed_forms(inputs)
    assert flattened.norms.n_samples == N_SEQ
    torch.testing.assert_close(flattened.input_sq_norm, expected_norm, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(flattened.hessian, expected_hessian, rtol=1e-5, atol=1e-5)
