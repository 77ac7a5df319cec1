"""The harness's ``HFLM`` with two observers: a cancel check and a progress fraction per task.

Imported only when zero-shot runs (importing the harness takes seconds). Nothing here changes a
number: both hooks run before delegating to the harness's own methods. They use two of HFLM's
internal methods (``_loglikelihood_tokens``, ``_model_call``; lm-eval 0.4.x, pinned in
requirements.txt); if a later harness renames them, only progress and in-task cancel stop working.
"""
from __future__ import annotations

from lm_eval.models.huggingface import HFLM

from ..cancel import CancelToken, check_cancelled

__all__ = ["CancellableHFLM"]


class CancellableHFLM(HFLM):
    def __init__(self, *args, cancel: CancelToken | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cancel = cancel
        self.on_fraction = None  # callable(fraction of this task's forward rows done)
        self._rows_total = 0
        self._rows_done = 0

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        # Rows the harness will run: requests sharing a context whose continuations differ only
        # in their last token are answered by one row (its logits cache, "group_by contexts").
        if self.backend == "causal" and self.logits_cache:
            self._rows_total = len({tuple(ctx + cont[:-1]) for _, ctx, cont in requests})
        else:
            self._rows_total = len(requests)
        self._rows_done = 0
        return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm,
                                             override_bs=override_bs)

    def _model_call(self, inps, attn_mask=None, labels=None):
        check_cancelled(self.cancel)
        logits = super()._model_call(inps, attn_mask=attn_mask, labels=labels)
        self._rows_done += int(inps.shape[0])
        if self.on_fraction is not None and self._rows_total:
            self.on_fraction(min(1.0, self._rows_done / self._rows_total))
        return logits
