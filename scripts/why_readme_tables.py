"""Print the README's "why Wanda works" tables from a ``python -m wanda_viz why --out-json`` file.

Usage: python scripts/why_readme_tables.py docs/why/smollm2-135m-why.json
Every number in the README section comes from this output (nothing typed by hand).
"""
from __future__ import annotations

import json
import sys

import pandas as pd


def _disagreement(payload: dict) -> str:
    layers = pd.DataFrame(payload["layers"]["rows"])
    overall = layers[layers["layer"] == "all layers"].iloc[0]
    kinds = layers[layers["layer"] != "all layers"].copy()
    kinds["kind"] = kinds["layer"].str.rsplit(".", n=1).str[-1]
    lines = ["| layers | top-1% share of disagreements | even spread | top-1% share of "
             "Wanda-only weights |", "|---|---|---|---|",
             f"| all {len(kinds)} | {overall['top_share']:.1%} | {overall['uniform_share']:.1%} "
             f"| {overall['top_share_wanda_only']:.1%} |"]
    for kind, part in kinds.groupby("kind", sort=False):
        share = part["top_share"]
        lines.append(f"| {kind} (median of {len(part)}, min-max) | {share.median():.1%} "
                     f"({share.min():.1%}-{share.max():.1%}) | {part['uniform_share'].iloc[0]:.1%} "
                     f"| {part['top_share_wanda_only'].median():.1%} |")
    top = pd.DataFrame(payload["top_channels"]["rows"])
    lines += ["", f"On the top-1% channels of all layers: {top['wanda_only'].sum():,} weights kept "
              f"by Wanda and pruned by magnitude, {top['magnitude_only'].sum():,} the reverse."]
    return "\n".join(lines) + f"\n\nProtocol: {payload['layers']['protocol']}"


def _weights(payload: dict) -> str:
    table = pd.DataFrame(payload["weights"]["rows"])
    dense = table.loc[table["kind"] == "dense", "perplexity"].item()
    lines = [f"Dense perplexity {dense:.2f}.", "",
             "| k | weights zeroed | outlier channels | random channels: mean (min-max, seeds) |",
             "|---|---|---|---|"]
    for k, part in table[table["kind"] != "dense"].groupby("k"):
        outlier = part.loc[part["kind"] == "outlier", "perplexity"].item()
        random = part.loc[part["kind"] == "random", "perplexity"]
        lines.append(f"| {k} | {part['zeroed_share'].iloc[0]:.2%} | {outlier:.2f} | "
                     f"{random.mean():.2f} ({random.min():.2f}-{random.max():.2f}, "
                     f"{len(random)}) |")
    return "\n".join(lines) + f"\n\nProtocol: {payload['weights']['protocol']}"


def _activations(payload: dict) -> str:
    table = pd.DataFrame(payload["activations"]["rows"])
    if table.empty:
        return f"Massive activations: {payload['activations'].get('note', 'none')}"
    lines = ["| massive activations | perplexity | entries replaced (of them on the first token) |",
             "|---|---|---|"]
    for row in table.itertuples():
        lines.append(f"| {row.intervention} | {row.perplexity:.2f} | {row.replaced} "
                     f"({row.first_token}) |")
    return "\n".join(lines) + f"\n\nProtocol: {payload['activations']['protocol']}"


def _provenance(payload: dict) -> str:
    record = payload.get("provenance")
    if not record:
        return ("Record: made before the why JSON named its model and commit (see the command "
                "above it).")
    source = record.get("source") or {}
    return (f"Record: model {record.get('model')}, wanda-viz {record.get('wanda_viz')}, commit "
            f"{source.get('commit', '?')[:7]}{' (uncommitted edits)' if source.get('dirty') else ''}"
            f"; `{record.get('command', '')}`")


def main(path: str) -> None:
    payload = json.loads(open(path, encoding="utf-8").read())
    print("\n\n".join([_disagreement(payload), _weights(payload), _activations(payload),
                        _provenance(payload)]))


if __name__ == "__main__":
    main(sys.argv[1])
