"""Is recipe B better than recipe A, or is the difference within the seeds' spread?

    python experiments/compare.py RUNS_A RUNS_B
    python experiments/compare.py 'multirun/x/optimizer=adam,*' 'multirun/x/optimizer=sgd_nesterov,*'

RUNS_A and RUNS_B each hold runs of one setting with different seeds: a population
(train.population=K), a sweep over seed=..., or any folder of such runs; or a quoted glob pattern
of such folders (one setting's jobs in a bigger sweep). For every metric both
have (final values, and best.pt's score as best_<metric>) it prints each side's mean ± standard
deviation, the difference B - A with a 95% interval (Welch's, which allows the two sides
different spreads), P(B < A) (how often a seed of B scores below a seed of A) with the p-value of
Mann-Whitney's rank test, and what they say: B lower, B higher (and which test alone says so), or
no clear difference. A GAN's result moves with its seed, so one seed of each says little. Each
metric is its own test; with many metrics one may find a difference by chance.
"""

import glob
import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

from ganlab import provenance
from ganlab.config import LOWER_IS_BETTER, QUALITY_METRICS, main_metric
from ganlab.summary import collect, compare, markdown_table, unfinished
from ganlab.sweep import flat_hparams

SEED_ONLY = {"seed", "train.population", "train.progress"}  # what may differ between a setting's runs


def runs_of(spec: str, name: str) -> tuple[list[dict], dict]:
    """The finished runs below `spec` (a folder, or a quoted glob pattern of folders: one setting's
    jobs in a sweep), each with its directory (`dir`) and best.pt's score, their setting (flat
    config, less the seed) and the runs that did not finish; stops with one line where they are
    not one setting's seeds."""
    roots = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_dir()) if glob.has_magic(spec) else [Path(spec)]
    if not roots:
        sys.exit(f"{name}: no folder matches {spec}")
    if not roots[0].is_dir():
        sys.exit(f"{name}: {spec} is not a directory; give a population's, a sweep's or a folder of runs")
    rows = [row | {"dir": root / row.pop("run")} for root in roots for row in collect(root)]
    missing = [row | {"run": root.name if row["run"] == "." else row["run"]}
               for root in roots for row in unfinished(root)]
    if len(rows) < 2:
        sys.exit(f"{name}: {spec} holds {len(rows)} finished run{'s' if len(rows) != 1 else ''}{left_out(missing)}; "
                 "a difference needs at least 2 seeds a side (train.population=K, or -m seed=0,1,2,...)")
    configs = [flat_hparams(OmegaConf.load(row["dir"] / "config.yaml")) for row in rows]
    differ = sorted(k for k in set().union(*configs) - SEED_ONLY if len({str(c.get(k)) for c in configs}) > 1)
    if differ:
        sys.exit(f"{name}: the runs in {spec} differ in {', '.join(differ[:3])}{' ...' if len(differ) > 3 else ''}, "
                 "not only in their seed; give one setting's runs (a population, or a quoted pattern of one "
                 "setting's jobs, e.g. 'multirun/x/optimizer=adam,*')")
    metric = main_metric(OmegaConf.load(rows[0]["dir"] / "config.yaml"))
    for row in rows:
        row.pop("wall_s", None)  # a population's copies share one: not each run's own
        best = json.loads((row["dir"] / "metrics.json").read_text()).get("best")
        if best:
            row[f"best_{metric}"] = best[metric]
    return rows, {k: v for k, v in configs[0].items() if k not in SEED_ONLY}, missing


def left_out(missing: list[dict]) -> str:
    """The runs without final metrics, which the means leave out: a recipe that diverges on some
    seeds looks no worse in the table than one that never does."""
    kinds: dict[str, list[str]] = {}  # diverged, still training, did not finish: the status's first words
    for row in missing:
        kind = next(k for k in ("diverged", "still training", "did not finish") if row["status"].startswith(k))
        kinds.setdefault(kind, []).append(row["run"])
    parts = [f"{len(runs)} {kind} ({', '.join(runs)})" for kind, runs in kinds.items()]
    return f"; left out, without final metrics: {' and '.join(parts)}" if parts else ""


def differences(a: dict, b: dict) -> str:
    """What B's setting changes of A's, as overrides."""
    changed = [f"{k}: {a.get(k)} -> {b.get(k)}" for k in sorted(set(a) | set(b)) if str(a.get(k)) != str(b.get(k))]
    return "; ".join(changed) if changed else "nothing (the same setting, other seeds or other code)"


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__.strip())
        sys.exit()
    if len(sys.argv) != 3:
        sys.exit("usage: python experiments/compare.py RUNS_A RUNS_B  (each: one setting's runs with different seeds)")
    a_spec, b_spec = sys.argv[1:]
    (a, setting_a, a_missing), (b, setting_b, b_missing) = runs_of(a_spec, "A"), runs_of(b_spec, "B")
    directional = {m for metrics in QUALITY_METRICS.values() for m in metrics}
    lower = LOWER_IS_BETTER | {f"best_{m}" for m in LOWER_IS_BETTER}
    higher = {m for m in directional if m not in LOWER_IS_BETTER}
    rows = compare(a, b, lower, higher | {f"best_{m}" for m in higher})
    if not rows:
        sys.exit(f"{a_spec} and {b_spec} have no metric in common (one dataset's runs against another's?)")
    for name, spec, runs, missing in (("A", a_spec, a, a_missing), ("B", b_spec, b, b_missing)):
        ran_on = sorted({provenance.conditions(r["dir"]) or "not recorded" for r in runs})
        print(f"{name}: {spec}, {len(runs)} runs{left_out(missing)}; ran on {' | '.join(ran_on)}")
    print(f"B changes: {differences(setting_a, setting_b)}")
    print("\n" + markdown_table([r for r in rows if not r["metric"].endswith("_real")], list(rows[0])))
