"""Collect the final metrics of many runs (a sweep, a set of seeds) into one table."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

COLUMNS = ("mean", "std", "ks", "w1")


def collect(root: Path) -> list[dict]:
    """One row per run directory below `root` that finished (has a metrics.json)."""
    rows = []
    for metrics_path in sorted(Path(root).rglob("metrics.json")):
        run_dir = metrics_path.parent
        row = {"run": str(run_dir.relative_to(root)) or "."}
        row |= json.loads(metrics_path.read_text())["final"]
        timing = run_dir / "timing.json"
        if timing.exists():
            row["wall_s"] = json.loads(timing.read_text())["wall_time_s"]
        rows.append(row)
    return rows


def markdown(rows: list[dict], columns: tuple[str, ...] = COLUMNS + ("wall_s",)) -> str:
    """A Markdown table of the rows, then the mean and the worst (max) of each column."""
    columns = tuple(c for c in columns if any(c in r for r in rows))
    lines = ["| run | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in rows:
        lines.append(f"| {row['run']} | " + " | ".join(f"{row.get(c, float('nan')):.4g}" for c in columns) + " |")
    if len(rows) > 1:
        for name, fn in (("mean", statistics.fmean), ("max", max)):
            lines.append(f"| **{name}** | " + " | ".join(
                f"{fn([r[c] for r in rows if c in r]):.4g}" for c in columns) + " |")
    return "\n".join(lines)
