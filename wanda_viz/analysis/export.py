"""Exports: any analysis table or sweep to CSV and JSON (the HTML report lives in figures).

Tensors and lists inside cells (e.g. the layers an outlier feature appears in) are written as JSON
text in CSV and as arrays in JSON, so the files reload without pickles.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import torch

__all__ = ["export_table", "table_to_records"]


def _plain(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return value.item()  # numpy / pandas scalars
    return value


def table_to_records(table: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts (NaN -> None, tensors/tuples -> lists)."""
    records = []
    for row in table.to_dict(orient="records"):
        clean = {}
        for key, value in row.items():
            value = _plain(value)
            if isinstance(value, float) and value != value:
                value = None
            clean[str(key)] = value
        records.append(clean)
    return records


def export_table(table: pd.DataFrame, path: str | os.PathLike, *,
                 protocol: str | None = None) -> Path:
    """Write ``table`` to ``path``; the format follows the suffix: .csv or .json.

    Args:
        protocol: caption stored with the data (JSON: a "protocol" field; CSV: a leading
            ``# protocol: ...`` comment line, read back with ``pd.read_csv(path, comment="#")``).
    Returns:
        The path written.
    """
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ValueError(f"export path must end in .csv or .json, got {str(out)!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    records = table_to_records(table)
    if suffix == ".json":
        payload = {"protocol": protocol, "columns": [str(c) for c in table.columns],
                   "rows": records}
        out.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
        return out
    flat = pd.DataFrame(records, columns=[str(c) for c in table.columns])
    for column in flat.columns:
        if flat[column].map(lambda v: isinstance(v, (list, dict))).any():
            flat[column] = flat[column].map(json.dumps)
    with open(out, "w", encoding="utf-8", newline="") as f:
        if protocol:
            f.write(f"# protocol: {protocol}\n")
        flat.to_csv(f, index=False)
    return out
