"""Collect the final metrics of many runs (a sweep, a set of seeds) into one table."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

COLUMNS = ("mean", "std", "ks", "w1")


def collect(root: Path) -> list[dict]:
    """One row per run directory below `root` that finished (has a metrics.json); a population's
    copies are runs of their own, and its own metrics.json (their mean) is left out."""
    rows = []
    for metrics_path in sorted(Path(root).rglob("metrics.json")):
        run_dir = metrics_path.parent
        metrics = json.loads(metrics_path.read_text())
        if "copies" in metrics:
            continue
        row = {"run": str(run_dir.relative_to(root)) or "."}
        row |= metrics["final"]
        timing = run_dir / "timing.json"
        if timing.exists():
            row["wall_s"] = json.loads(timing.read_text())["wall_time_s"]
        rows.append(row)
    return rows


def mean_and_std(rows: list[dict]) -> dict:
    """Mean and standard deviation (`KEY_std`) of each value over the rows (runs, copies, seeds)."""
    out = {}
    for key in rows[0]:
        values = [row[key] for row in rows]
        out[key] = statistics.fmean(values)
        out[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return out


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Rows as a Markdown table; floats to 4 significant digits."""
    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def spread_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A Markdown table of two rows: the mean and the standard deviation of each column over the rows."""
    spread = mean_and_std([{c: r[c] for c in columns} for r in rows])
    return markdown_table([{"": "mean", **{c: spread[c] for c in columns}},
                           {"": "std", **{c: spread[f"{c}_std"] for c in columns}}], ["", *columns])


def markdown(rows: list[dict], columns: tuple[str, ...] = COLUMNS + ("wall_s",)) -> str:
    """A Markdown table of the runs, then the mean and the worst (max) of each column."""
    columns = [c for c in columns if any(c in r for r in rows)]
    if len(rows) > 1:
        rows = rows + [{"run": f"**{name}**", **{c: float(fn([r[c] for r in rows if c in r])) for c in columns}}
                       for name, fn in (("mean", statistics.fmean), ("max", max))]
    return markdown_table(rows, ["run", *columns])


def write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=1))
