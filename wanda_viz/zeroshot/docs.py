"""Row adapters the local task files name with ``process_docs: !function`` (importable by path).

Kept to the one field a data source names differently; the harness's prompt reads the rest.
"""
from __future__ import annotations

__all__ = ["boolq_label"]


def boolq_label(dataset):
    """google/boolq rows (``answer``: bool) -> the ``label`` (0 = no, 1 = yes) of super_glue's."""
    return dataset.map(lambda row: {"label": int(bool(row["answer"]))})
