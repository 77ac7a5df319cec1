"""Protocol captions shared by the command line, the dashboard, the sweep table and the figures.

One wording per protocol, so a number reads the same wherever it is shown (docs PROTOCOLS.md).
The perplexity caption is ``evaluate.perplexity_protocol``; the calibration caption is here.
"""
from __future__ import annotations

__all__ = ["calibration_caption"]


def calibration_caption(calibration: dict | None, calib_ids=None) -> str:
    """'wikitext2, 32 x 256 tokens, seed 0': the windows a statistic was computed on.

    Args:
        calibration: ``get_calibration_ids``'s description (source, n_samples, seq_len, seed).
        calib_ids: the (n_samples, seq_len) ids, for the shape when the description lacks it.
    """
    if not calibration and calib_ids is None:
        return "no calibration"
    calib = calibration or {}
    n, length = tuple(calib_ids.shape) if calib_ids is not None else ("?", "?")
    return (f"{calib.get('source', 'calibration windows')}, {calib.get('n_samples', n)} x "
            f"{calib.get('seq_len', length)} tokens, seed {calib.get('seed', '?')}")
