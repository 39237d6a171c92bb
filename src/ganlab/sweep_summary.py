"""A sweep's summary at its root when a multirun ends (sweep.SweepSummary): summary.md and
summary.csv, one row a job sorted by the metric it was judged by, and summary_seeds.csv, the jobs
that differ only in their seed aggregated, each setting against the best; and what the jobs ran on."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ganlab import provenance
from ganlab.checkpoint import FAILURE
from ganlab.config import LOWER_IS_BETTER, main_metric
from ganlab.files import write_text
from ganlab.summary import markdown_table, mean_and_std, rank_test, welch_interval


def best_of(metrics: dict, metric: str) -> dict[str, float]:
    """A job's best `metric` (best.pt's score): a run's own, or its population's mean and spread."""
    if "copies" in metrics:
        scores = [{f"best_{metric}": row[f"best_{metric}"]} for row in metrics["copies"] if f"best_{metric}" in row]
        return mean_and_std(scores) if scores else {}
    return {f"best_{metric}": metrics["best"][metric]} if "best" in metrics else {}


def job_rows(sweep_dir: Path, metric: str) -> list[dict[str, Any]]:
    """One row a job: its overrides, the metric it is judged by (`metric`, or its own dataset's
    in a sweep over datasets), its final metrics and best score by that metric (or its failure)."""
    rows = []
    for overrides_file in sorted(sweep_dir.glob("**/.hydra/overrides.yaml")):
        job_dir = overrides_file.parent.parent
        overrides = [o for o in OmegaConf.load(overrides_file) if not o.startswith(("hydra", "train.progress", "resume="))]
        row: dict[str, Any] = {"job": str(job_dir.relative_to(sweep_dir)), "overrides": " ".join(overrides),
                               "metric": judged_by(job_dir, metric)}
        if (job_dir / "metrics.json").exists():
            metrics = json.loads((job_dir / "metrics.json").read_text())
            row |= {k: v for k, v in metrics["final"].items() if k != "iteration"} | best_of(metrics, row["metric"])
            row["status"] = "ok"
        else:
            failure = job_dir / FAILURE
            row["status"] = failure.read_text().strip() if failure.exists() else "did not finish"
        row["ran_on"] = provenance.conditions(job_dir)
        rows.append(row)
    return rows


def judged_by(job_dir: Path, metric: str) -> str:
    """The metric the job was trained to optimize (what train.py returned to the sweeper): the
    sweep's own but in a sweep over datasets, whose jobs each have their dataset's (ks, fd)."""
    try:
        return main_metric(OmegaConf.load(job_dir / ".hydra" / "config.yaml"))
    except (OSError, OmegaConfBaseException, KeyError):  # (a job's config that is gone or not ganlab's)
        return metric


def ordered_metrics(keys: set[str]) -> list[str]:
    """A population's counts first, then each metric followed by its spread over the copies
    (`ks`, `ks_std`, `ks_real`, ...), so a mean and its error bar sit side by side."""
    counts = [k for k in ("copies", "failed") if k in keys]
    bases = sorted(k for k in keys if k not in counts and not k.endswith("_std"))
    return counts + [m for base in bases for m in (base, f"{base}_std") if m in keys]


def aggregate_seeds(rows: list[dict[str, Any]], metrics: list[str], metric: str) -> list[dict[str, Any]]:
    """Mean and standard deviation over the jobs that differ only in their seed, best `metric`
    first; and each setting's difference to the best with its 95% interval (Welch's) and the rank
    test's p-value, so a setting the seeds cannot tell from the best reads as a tie. Where jobs
    failed (diverged, did not finish), how many of each setting's (`seeds_failed`): its means are
    over the others, and a setting that failed on every seed is a row of its own, last."""
    groups: dict[str, list[dict]] = {}
    failed: dict[str, int] = {}
    for row in rows:
        setting = " ".join(o for o in row["overrides"].split() if not o.startswith("seed=")) or "(defaults)"
        groups.setdefault(setting, [])
        if row["status"] == "ok":
            groups[setting].append(row)
        else:
            failed[setting] = failed.get(setting, 0) + 1
    if not any(groups.values()):
        return []
    out = []
    for setting, members in groups.items():
        agg: dict[str, Any] = {"setting": setting, "seeds": len(members)}
        if failed:
            agg["seeds_failed"] = failed.get(setting, 0)
        for m in metrics:
            if values := [{m: r[m]} for r in members if m in r]:
                stats = mean_and_std(values)
                agg[f"{m}_mean"], agg[f"{m}_std"] = stats[m], stats[f"{m}_std"]
        out.append(agg)
    sign = 1 if metric in LOWER_IS_BETTER else -1
    out.sort(key=lambda r: (f"{metric}_mean" not in r, sign * r.get(f"{metric}_mean", 0.0)))
    best = [r[metric] for r in groups[out[0]["setting"]]]
    for agg in out:
        values = [r[metric] for r in groups[agg["setting"]] if metric in r]
        if agg is out[0]:
            versus = "best"
        elif not values:
            versus = "(every seed failed)"
        elif min(len(values), len(best)) < 2:
            versus = "(needs 2 seeds)"
        else:
            diff, lo, hi = welch_interval(best, values)
            p = rank_test(best, values)[1]
            tie = " tie" if lo <= 0 <= hi and p >= 0.05 else ""
            versus = f"{diff:+.4g} [{lo:.4g}, {hi:.4g}], ranks p {p:.2g}{tie}"
        agg[versus_best(metric)] = versus
    return out


def versus_best(metric: str) -> str:
    return f"{metric} - best (95%)"


def ran_on(rows: list[dict[str, Any]]) -> str:
    """What the jobs ran on (code, torch, device, threads, and on CPUs the CPU: environment.json),
    said once when they all ran on the same, else job by job: numbers from different code are not
    comparable."""
    conditions = {row["ran_on"] for row in rows if row["ran_on"]}
    if len(conditions) == 1:
        return f"Every job ran on {conditions.pop()} (each job's environment.json has more).\n"
    if not conditions:
        return ""
    return ("**The jobs did not all run on the same code, software and machine** (each job's environment.json "
            "has more):\n\n" + markdown_table(rows, ["job", "ran_on"]) + "\n")


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, text.getvalue())


def write_summary(sweep_dir: Path, metric: str) -> Path | None:
    """summary.csv / summary.md (one row a job, sorted by `metric`) and, where some setting ran
    with several seeds, the seed aggregate (summary_seeds.csv). A sweep over datasets gets a table
    for each metric its jobs were judged by (KS for the 1-D jobs, FD for the MNIST ones)."""
    rows = job_rows(sweep_dir, metric)
    if not rows:
        return None
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: r["metric"] != metric):  # the sweep's own metric first
        groups.setdefault(row["metric"], []).append(row)
    if len(groups) == 1:
        ((judged, members),) = groups.items()
        text, seeds = summary_of(members, judged, f"# Sweep summary, sorted by {better(judged)}", "##", ran_on(rows))
    else:
        text, seeds = (f"# Sweep summary\n\nThe jobs trained on different datasets, each judged by its own metric "
                       f"({', '.join(groups)}): a table for each.\n\n" + ran_on(rows)), []
        for judged, members in groups.items():
            section, section_seeds = summary_of(members, judged, f"\n## Jobs judged by {better(judged)}", "###")
            text, seeds = text + section, seeds + section_seeds
    rows = [row for members in groups.values() for row in members]  # each group sorted by its metric
    columns = ["job", "status", *ordered_metrics({k for r in rows for k in r} - NOT_METRICS)]
    write_csv(sweep_dir / "summary.csv", rows, ["overrides", *columns, "ran_on"])
    if seeds:
        versus = [versus_best(m) for m in groups if any(versus_best(m) in row for row in seeds)]
        counts = ["setting", "seeds", *(["seeds_failed"] if "seeds_failed" in seeds[0] else []), *versus]
        rest = dict.fromkeys(k for row in seeds for k in row if k not in counts)
        write_csv(sweep_dir / "summary_seeds.csv", seeds, [*counts, *rest])
    else:
        (sweep_dir / "summary_seeds.csv").unlink(missing_ok=True)
    write_text(sweep_dir / "summary.md", text)
    return sweep_dir / "summary.md"


NOT_METRICS = {"job", "overrides", "metric", "status", "ran_on"}


def better(metric: str) -> str:
    return f"{metric} ({'lower' if metric in LOWER_IS_BETTER else 'higher'} is better)"


def summary_of(rows: list[dict[str, Any]], metric: str, title: str, level: str,
               after_table: str = "") -> tuple[str, list[dict[str, Any]]]:
    """The Markdown of jobs judged by `metric`: their table, sorted by it (in place), then their
    seeds aggregated; and the aggregate's rows, where some setting ran with several seeds."""
    metrics = ordered_metrics({k for r in rows for k in r} - NOT_METRICS)
    sign = 1 if metric in LOWER_IS_BETTER else -1
    rows.sort(key=lambda r: (r["status"] != "ok", sign * r.get(metric, 0.0)))
    text = (f"{title}\n\n" + markdown_table(rows, ["job", "status", *metrics]) + "\n\n"
            + (f"{after_table}\n" if after_table else "") + f"{level} Seeds aggregated (mean and standard deviation)\n\n")
    # a population's counts and spreads over its copies are not averaged again over seeds
    means = [m for m in metrics if m not in ("copies", "failed") and not m.endswith("_std")]
    seeds = aggregate_seeds(rows, means, metric)
    if any(row["seeds"] > 1 for row in seeds):
        versus = versus_best(metric)
        counts = ["setting", "seeds", *(["seeds_failed"] if "seeds_failed" in seeds[0] else []), versus]
        agg_columns = [*counts, *[k for k in dict.fromkeys(k for row in seeds for k in row) if k not in counts]]
        return (text + markdown_table(seeds, agg_columns) + f"\n\n`{versus}`: a setting's mean {metric} minus the "
                "best setting's, with Welch's 95% interval over their seeds, and the p-value of Mann-Whitney's rank "
                "test (which a few failed seeds hardly move); `tie`: neither tells the setting from the best (the "
                "interval holds 0, p >= 0.05)."
                + (" `seeds_failed`: the setting's jobs that diverged or did not finish, left out of its means."
                   if "seeds_failed" in seeds[0] else "") + "\n"), seeds
    if all((row.get("copies") or 1) > 1 for row in rows):  # (an Optuna search of populations, say)
        return text + ("Each job is a population (`train.population`): its row above is its copies' mean, with "
                       f"their standard deviation beside it (`{metric}_std`, ...).\n"), []
    return text + ("No setting ran with more than one seed: add `seed=0,1,2` to the sweep, or train each "
                   "setting as a population (`train.population=K`, whose spread is in the table above).\n"), []
