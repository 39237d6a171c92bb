"""Collect the final metrics of many runs (a sweep, a set of seeds) into one table."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from ganlab.checkpoint import holders, how_it_diverged
from ganlab.config import QUALITY_METRICS

# The generated data's mean and spread (1-D), then every dataset's quality metrics
COLUMNS = ("mean", "std", *(metric for metrics in QUALITY_METRICS.values() for metric in metrics))


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


def unfinished(root: Path) -> list[dict]:
    """The runs below `root` without final metrics, which collect() leaves out, each with why
    (`status`): diverged (its failure.txt's first clause), still training (a live process holds
    it, or its population), or "did not finish" (stopped before its end). A summary of the others
    must say they are missing."""
    training = {lock.parent: text.split()[1] for lock, text in holders(root).items()}
    rows = []
    for config in sorted(Path(root).rglob("config.yaml")):
        run_dir = config.parent
        if run_dir.name == ".hydra" or (run_dir / "metrics.json").exists():
            continue
        pid = training.get(run_dir) or training.get(run_dir.parent)  # (a population's copy: the population's)
        status = how_it_diverged(run_dir) or (f"still training (process {pid})" if pid else "did not finish")
        rows.append({"run": str(run_dir.relative_to(root)) or ".", "status": status})
    return rows


def not_in_the_table(missing: list[dict], table_shown: bool) -> str:
    """The lines that name the runs a table leaves out (unfinished()), under it."""
    head = f"\nNot in the table: {len(missing)}" if table_shown else f"No run finished: {len(missing)}"
    lines = [f"{head} run{'s' if len(missing) > 1 else ''} without final metrics"]
    return "\n".join(lines + [f"- {row['run']}: {row['status']}" for row in missing])


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
    """A Markdown table of the runs, then the mean, min and max of each column (its worst is the
    max of a distance such as ks or fd, the min of a score)."""
    columns = [c for c in columns if any(c in r for r in rows)]
    if len(rows) > 1:
        rows = rows + [{"run": f"**{name}**", **{c: float(fn([r[c] for r in rows if c in r])) for c in columns}}
                       for name, fn in (("mean", statistics.fmean), ("min", min), ("max", max))]
    return markdown_table(rows, ["run", *columns])


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile for p > 0.5 (numpy has none, and scipy is not a dependency): the
    density integrated on a fine grid, then bisection."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(t: float) -> float:
        x = np.linspace(0.0, t, 4001)
        density = np.exp(log_norm - (df + 1) / 2 * np.log1p(x * x / df))
        return 0.5 + float((density[1:] + density[:-1]).sum() * (x[1] - x[0]) / 2)

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        lo, hi = hi, 2 * hi
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def welch_interval(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """mean(b) - mean(a), and Welch's interval for it: the two sides' seeds are independent and
    their spreads may differ (one recipe oscillates, the other settles)."""
    se_a, se_b = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff, se = statistics.fmean(b) - statistics.fmean(a), math.sqrt(se_a + se_b)
    if se == 0:
        return diff, diff, diff
    df = (se_a + se_b) ** 2 / (se_a ** 2 / (len(a) - 1) + se_b ** 2 / (len(b) - 1))
    half = t_quantile((1 + level) / 2, df) * se
    return diff, diff - half, diff + half


def rank_test(a: list[float], b: list[float]) -> tuple[float, float]:
    """P(B < A): the chance that a seed of B scores below a seed of A (ties count half), and the
    two-sided p-value of Mann-Whitney's test of it (normal approximation with tie and continuity
    corrections). Ranks are not pulled by a few failed seeds, as means are."""
    below = sum((y < x) + 0.5 * (y == x) for x in a for y in b)
    n, m = len(a), len(b)
    ties = np.unique(np.concatenate([a, b]), return_counts=True)[1]
    variance = n * m / 12 * ((n + m + 1) - float((ties ** 3 - ties).sum()) / ((n + m) * (n + m - 1)))
    if variance <= 0:
        return below / (n * m), 1.0
    z = max(abs(below - n * m / 2) - 0.5, 0.0) / math.sqrt(variance)
    return below / (n * m), math.erfc(z / math.sqrt(2))


def compare(a: list[dict], b: list[dict], lower_is_better: set[str], higher_is_better: set[str]) -> list[dict]:
    """For each metric both sets of runs have: each side's mean and standard deviation, B - A with
    Welch's 95% interval, P(B < A) with the rank test's p-value, and what they say. The two can
    disagree: a few failed seeds widen the means' interval but move ranks little, and with few
    seeds the rank test cannot reach 5% (three a side: never), where a large shift of the means can."""
    rows = []
    for key in [k for k in a[0] if k in b[0] and isinstance(a[0][k], (int, float)) and k != "iteration"]:
        xs, ys = [r[key] for r in a if key in r], [r[key] for r in b if key in r]
        diff, lo, hi = welch_interval(xs, ys)
        below, p = rank_test(xs, ys)
        by_means = None if lo <= 0 <= hi else ("lower" if hi < 0 else "higher")
        by_ranks = None if p >= 0.05 else ("lower" if below > 0.5 else "higher")
        side = by_means or by_ranks
        if side is None:
            verdict = "no clear difference"
        elif by_means and by_ranks and by_means != by_ranks:  # possible in principle: say so, pick neither
            verdict = f"the tests disagree (means: B {by_means}, ranks: B {by_ranks})"
        else:
            better = (side == "lower") == (key in lower_is_better)
            judged = key in lower_is_better | higher_is_better
            verdict = f"B {side}" + (f" ({'better' if better else 'worse'})" if judged else "")
            if by_means != by_ranks:  # one test alone
                verdict += f" by {'means' if by_means == side else 'ranks'} only"
        rows.append({"metric": key, "A": f"{statistics.fmean(xs):.4g} ± {statistics.stdev(xs):.2g}",
                     "B": f"{statistics.fmean(ys):.4g} ± {statistics.stdev(ys):.2g}",
                     "B - A": diff, "95% interval": f"[{lo:.4g}, {hi:.4g}]",
                     "P(B < A)": below, "p (ranks)": p, "": verdict})
    return rows
