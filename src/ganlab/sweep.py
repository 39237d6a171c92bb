"""What a sweep needs beyond single runs: its own root and every job's config checked before the
first job runs, flat hyperparameters, a fair share of CPU threads, and a summary table written at the sweep
root when a multirun ends."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import signal
import sys
import time
from contextlib import suppress
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from hydra import compose
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ganlab import provenance
from ganlab.checkpoint import holders
from ganlab.config import LOWER_IS_BETTER, ConfigError, count_as_given, main_metric, validate
from ganlab.errors import STOP_SIGNALS, end_with, fail, on_ctrl_c, one_line, say
from ganlab.files import write_text
from ganlab.overrides import as_typed
from ganlab.summary import markdown_table, mean_and_std, rank_test, welch_interval

log = logging.getLogger("ganlab")


def flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The run's settings as flat key -> int/float/str/bool, for TensorBoard's HParams."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            value = node if isinstance(node, (int, float, str, bool)) else str(node)
            flat[prefix[:-1]] = value

    container = OmegaConf.to_container(cfg, resolve=True)
    for group in ("dataset", "model", "optimizer", "train"):
        walk(container[group], f"{group}.")
    flat["seed"] = cfg.seed
    return flat


def fair_threads(processes: int = 1) -> int:
    """Torch threads for this job: all cores, divided among the jobs a launcher runs at once
    and among the processes of a torchrun job."""
    return max(1, usable_cores() // (processes * jobs_at_once()))


def jobs_at_once() -> int:
    """How many jobs of this sweep run at once on this machine: the launcher's n_jobs (joblib's;
    -1 is one a core), else one."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra = HydraConfig.get()
        n_jobs = OmegaConf.select(hydra.launcher, "n_jobs", default=None) if hydra.mode == RunMode.MULTIRUN else None
    except ValueError:  # not under Hydra
        n_jobs = None
    return (usable_cores() if n_jobs < 0 else n_jobs) if n_jobs else 1


def too_many_threads(threads: int, processes: int = 1) -> str | None:
    """A warning where train.threads, in each of the jobs and torchrun processes running at once,
    comes to more threads than the cores: the extra threads only wait on the others (OpenMP's
    threads spin while they wait). On 2 cores one run of 3-8 threads trained 2-4x slower, two
    torchrun processes of 2 threads 3x, and two joblib jobs of 2 threads 7-12x (experiments/README.md)."""
    cores, jobs = usable_cores(), jobs_at_once()
    total = threads * jobs * processes
    if not threads or total <= cores:
        return None
    sharing = []
    if processes > 1:
        sharing.append(f"{processes} torchrun processes")
    if jobs > 1:
        sharing.append(f"{jobs} jobs at once (hydra.launcher.n_jobs)")
    if sharing:
        problem, fix = f"in each of {' of '.join(sharing)} makes {total} threads, more than", "shares the cores among them"
    else:
        problem, fix = "is more than", "uses every core"
    return (f"train.threads={threads} {problem} the {cores} {'core' if cores == 1 else 'cores'} this process may use: "
            "the extra threads only wait on the others, and training slows (2-12x on 2 cores, experiments/README.md, "
            f'"Sweeps: parallel jobs"); train.threads=0 {fix}')


def usable_cores() -> int:
    """The cores this process may run on: its affinity mask where the system has one (taskset, a
    container's CPU set), else the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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
            failure = job_dir / "failure.txt"
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
    test's p-value, so a setting the seeds cannot tell from the best reads as a tie."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row["status"] == "ok":
            setting = " ".join(o for o in row["overrides"].split() if not o.startswith("seed="))
            groups.setdefault(setting or "(defaults)", []).append(row)
    out = []
    for setting, members in groups.items():
        agg: dict[str, Any] = {"setting": setting, "seeds": len(members)}
        for m in metrics:
            stats = mean_and_std([{m: r[m]} for r in members if m in r])
            agg[f"{m}_mean"], agg[f"{m}_std"] = stats[m], stats[f"{m}_std"]
        out.append(agg)
    if not out:
        return out
    sign = 1 if metric in LOWER_IS_BETTER else -1
    out.sort(key=lambda r: sign * r[f"{metric}_mean"])
    best = [r[metric] for r in groups[out[0]["setting"]]]
    for agg in out:
        values = [r[metric] for r in groups[agg["setting"]]]
        if agg is out[0]:
            versus = "best"
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
        rest = dict.fromkeys(k for row in seeds for k in row if k not in ("setting", "seeds", *versus))
        write_csv(sweep_dir / "summary_seeds.csv", seeds, ["setting", "seeds", *versus, *rest])
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
        agg_columns = ["setting", "seeds", versus, *[k for k in seeds[0] if k not in ("setting", "seeds", versus)]]
        return (text + markdown_table(seeds, agg_columns) + f"\n\n`{versus}`: a setting's mean {metric} minus the "
                "best setting's, with Welch's 95% interval over their seeds, and the p-value of Mann-Whitney's rank "
                "test (which a few failed seeds hardly move); `tie`: neither tells the setting from the best (the "
                "interval holds 0, p >= 0.05).\n"), seeds
    if all((row.get("copies") or 1) > 1 for row in rows):  # (an Optuna search of populations, say)
        return text + ("Each job is a population (`train.population`): its row above is its copies' mean, with "
                       f"their standard deviation beside it (`{metric}_std`, ...).\n"), []
    return text + ("No setting ran with more than one seed: add `seed=0,1,2` to the sweep, or train each "
                   "setting as a population (`train.population=K`, whose spread is in the table above).\n"), []


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, write the summary tables at the sweep root."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        path = write_summary(Path(config.hydra.sweep.dir), main_metric(config))
        if path is not None:
            log.info("sweep summary: %s", path)


DEFAULT_ROOT = "multirun/${now:%Y-%m-%d}/${now:%H-%M-%S}"  # conf/hydra/default.yaml


def sweep_stopped(sweep_dir: str) -> str:
    """What a Ctrl-C in a sweep, outside a job's training loop, leaves (errors.report_ctrl_c)."""
    return ("the sweep stopped (a job in training saved a checkpoint where it could); continue it with the same "
            f"command plus resume=auto {as_typed('hydra.sweep.dir', str(sweep_dir))}")


def let_the_jobs_stop_first(sweep_dir: Path) -> None:
    """Where jobs run in processes of their own (joblib), a terminal's Ctrl-C reaches each of
    them too, and each saves a checkpoint and stops (run.stop_requests). But joblib kills every
    other job the moment one job's stop reaches it, and a job that saves more slowly (a bigger
    model, a slower device) lost all it had trained since its last checkpoint. So the launcher's
    process takes a first SIGINT, SIGTERM or SIGHUP by waiting, in its handler, where joblib
    cannot act, until every job training in the sweep has saved and let go of its run directory
    (checkpoint.holders), then a moment for its last line, and then it ends the sweep.

    It passes a Ctrl-C on to each of those jobs, once: a `kill -INT` or `kill` (SIGTERM) of the
    launcher alone reached none (SIGTERM ended the launcher and left its jobs training, with no
    one to collect them), nor did a job that a free worker began since. A job takes two within
    run.SAME_REQUEST_S as one. A Ctrl-C rather than SIGTERM: a job still starting stops on it
    with one line, where SIGTERM would kill it outright. A second signal stops everything at once."""
    received = []

    def wait_for_the_jobs(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) > 1 or not jobs_training(sweep_dir):  # asked twice; or no job is training yet
            say(f"ganlab: error: {name}: {sweep_stopped(sweep_dir)}\n")
            stop_the_sweep(128 + signum)  # and joblib kills the jobs
        say(f"ganlab: {name}: the running jobs save a checkpoint and stop "
            f"({'Ctrl-C' if signum == signal.SIGINT else name} again: at once)\n")
        asked: dict[Path, str] = {}
        while training := jobs_training(sweep_dir).items():
            for lock, owner in training - asked.items():
                asked[lock] = owner
                with suppress(ProcessLookupError):
                    os.kill(int(owner.split()[1]), signal.SIGINT)
            time.sleep(0.05)
        if asked:
            time.sleep(LAST_LINE_S)
        stop_the_sweep(128 + signum)  # no further job; joblib ends the idle workers

    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:  # (`python train.py -m ... &` in a script, nohup)
            signal.signal(signum, wait_for_the_jobs)


def stop_the_sweep(code: int) -> NoReturn:
    """Raise SystemExit(code) from the launcher's signal handler, so that joblib ends the workers
    and starts no further job. It lands wherever the launcher was, and it went wrong there in two
    ways (experiments/README.md, "Signals to a joblib sweep"). Code that cannot take an exception at
    any point replaced it with an error of its own: OmegaConf's ListConfig.append, while Hydra built
    a job's config ("'NoneType' object has no attribute '_invalidate_flags_cache'", exit code 2: CI
    once), and Hydra's config source (UnboundLocalError, exit code 1). And in a finalizer or a
    weakref callback Python swallowed it ("Exception ignored in"), and the sweep ran on to the end,
    exit code 0. So the exit code is kept apart (errors.end_with), and a swallowed stop is raised
    again 10 ms later (SIGALRM)."""
    stop = SystemExit(code)

    def again(signum: int, frame: FrameType | None) -> None:
        raise stop

    def again_if_swallowed(unraisable: Any) -> None:
        if unraisable.exc_value is stop:
            signal.setitimer(signal.ITIMER_REAL, 0.01)
        else:
            sys.__unraisablehook__(unraisable)

    end_with(code)
    signal.signal(signal.SIGALRM, again)
    sys.unraisablehook = again_if_swallowed
    raise stop


LAST_LINE_S = 0.5  # a job's "checkpoint saved" line comes just after it lets go of its run directory


def jobs_training(sweep_dir: Path) -> dict[Path, str]:
    """The run-directory locks under sweep_dir held by this launcher's workers (its process group;
    not a stranger that took over the PID of a killed job)."""
    jobs = {}
    for lock, owner in holders(sweep_dir).items():
        with suppress(ProcessLookupError):
            if os.getpgid(int(owner.split()[1])) == os.getpgid(0):
                jobs[lock] = owner
    return jobs


def after_the_end(sweep_dir: Path) -> None:
    """Every job has ended and the summary is written; the launcher's exit (loky ending its
    workers) takes a moment more. A signal then raised SystemExit into the interpreter's shutdown:
    "Exception ignored in: <module 'threading'>", a traceback, and exit code 0. Now the sweep's
    handler says so in one line and lets the exit finish, with 128 + the signal's number."""
    said = []

    def finished(signum: int, frame: FrameType | None) -> None:
        if not said:
            said.append(signum)
            say(f"ganlab: error: {signal.Signals(signum).name}: stopped after the sweep had finished; "
                f"its files are in {sweep_dir}\n")
            end_with(128 + signum)

    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, finished)


def claim_default_root(config: DictConfig) -> None:
    """Make the default sweep root, multirun/DATE/TIME, before any job: a second sweep started in
    the same second that finds it made stops, where the two would have shared one root (and its
    multirun.yaml and summary). A root chosen otherwise (hydra.sweep.dir=, on the command line or
    in a preset) may exist: resume=auto, say."""
    if OmegaConf.to_container(config.hydra.sweep)["dir"] != DEFAULT_ROOT:  # unresolved: as configured
        return
    root = Path(str(config.hydra.sweep.dir))
    try:
        root.mkdir(parents=True)
    except FileExistsError:
        fail(ConfigError(f"{root} was made by another sweep started in the same second; give this one a "
                         "directory of its own with hydra.sweep.dir=DIR"))
    except OSError:
        return  # not writable: Hydra's own attempt says so, in one line


class SweepCheck(Callback):
    """Hydra callback: before a sweep runs its first job, check the counts of jobs and trials
    (check_counts) and, for a grid sweep (Hydra's basic sweeper), compose and validate every job's
    config, so that a bad value in the last job stops the sweep at once instead of after the jobs
    before it have trained (Hydra itself checks only keys and types); then claim its root
    (claim_default_root), and say what a Ctrl-C leaves; under joblib, take the signals
    (let_the_jobs_stop_first), and once the sweep has finished, take them as such (after_the_end)."""

    BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        on_ctrl_c(sweep_stopped(config.hydra.sweep.dir))
        check_counts(config)
        check_slurm(config)
        if config.hydra.sweeper.get("_target_") == self.BASIC:  # (Optuna and others choose values as they go)
            check_every_job(config)
        claim_default_root(config)  # once the sweep will run: a bad value leaves no empty root behind
        if launcher(config) == "JoblibLauncher" and os.name == "posix":  # (process groups, SIGALRM)
            let_the_jobs_stop_first(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:  # (after SweepSummary's: Hydra reverses)
        if launcher(config) == "JoblibLauncher":
            after_the_end(Path(config.hydra.sweep.dir))


def check_counts(config: DictConfig) -> None:
    """Counts the plugins take unchecked: joblib's n_jobs=0 ended in a ValueError's traceback,
    the Optuna sweeper's n_trials=0 (or fewer) in "No trials are completed yet", and its n_jobs=0
    launched 0 jobs again and again, for ever."""
    counts = [("launcher.n_jobs", lambda n: n != 0, "give how many jobs run at once (hydra.launcher.n_jobs=2), or "
               "-1 for one a core"),
              ("sweeper.n_trials", lambda n: n > 0, "give how many settings the search tries (hydra.sweeper.n_trials=20)"),
              ("sweeper.n_jobs", lambda n: n > 0, "give how many trials run at once (hydra.sweeper.n_jobs=1)")]
    for key, fine, fix in counts:
        value = OmegaConf.select(config.hydra, key, default=None)
        if isinstance(value, int) and not fine(value):
            fail(ConfigError(f"hydra.{key}={value} would run nothing; {fix}"))


def check_slurm(config: DictConfig) -> None:
    """submitit's SLURM launcher on a machine without SLURM ended in a traceback ('Could not
    detect "srun", are you indeed on a slurm cluster?'), after Hydra had written the sweep's root."""
    if launcher(config) == "SlurmLauncher" and shutil.which("srun") is None:
        fail(ConfigError("hydra/launcher=submitit_slurm submits the jobs to SLURM, which this machine lacks (no srun "
                         "on its PATH); start the sweep on a node of the SLURM cluster, or run the jobs on this "
                         "machine with hydra/launcher=joblib or submitit_local"))


def check_every_job(config: DictConfig) -> None:
    """Compose and validate each job of a grid sweep, and where the jobs run here, check their
    device (train.device, train.amp) on this machine; the first bad one ends the sweep (one line)."""
    arguments = [*(f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()),
                 *config.hydra.overrides.task]
    try:  # the jobs as Hydra's basic sweeper lists them (an internal module: a check, not a dependency)
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        overrides = OverridesParser.create().parse_overrides(arguments)
        check_no_interval(overrides)
        (jobs,) = BasicSweeper.split_arguments(overrides, None)
    except Exception:  # noqa: BLE001  Hydra's sweeper reports what it cannot read, in one line
        return
    here = runs_here(config)
    for number, overrides in enumerate(jobs):
        try:  # (one Hydra cannot compose stopped the sweep there, after it had written its multirun.yaml)
            cfg = compose(config.hydra.job.config_name, overrides=overrides)
            count_as_given(cfg, overrides)
            validate(cfg)
            if here and (cfg.train.device not in ("auto", "cpu") or cfg.train.amp):  # (torch imported only then)
                from ganlab.distributed import check_machine

                check_machine(cfg.train.device, cfg.train.amp)
        except (ConfigError, HydraException, OmegaConfBaseException) as error:  # exits here: Hydra turns a
            # callback's exceptions into warnings
            fail(ConfigError(f"sweep job #{number} ({' '.join(overrides)}): {one_line(error)}; no job has run"))
    check_job_directories(config, jobs)


def check_no_interval(overrides: list) -> None:
    """interval(LOW,HIGH), which a grid sweep cannot list: Hydra said only "BasicSweeper does not
    support sweep type : INTERVAL_SWEEP"."""
    from hydra.core.override_parser.types import ValueType

    for override in overrides:
        if override.value_type == ValueType.INTERVAL_SWEEP:
            fail(ConfigError(
                f"{override.input_line}: interval() is a range for a search to draw from, which a grid sweep (-m) "
                f"cannot list; give the values ({override.get_key_element()}=0.001,0.003,0.01, or range(START,STOP,STEP)), "
                "or search with Optuna, which draws from it: add hparams_search=normal_optuna (or mnist_optuna)"))


LOCAL_LAUNCHERS = ("BasicLauncher", "JoblibLauncher", "LocalLauncher")  # Hydra's, joblib's, submitit_local's


def runs_here(config: DictConfig) -> bool:
    """Whether the launcher runs the jobs on this machine, so that this machine's devices are theirs
    (not SLURM's nodes, say)."""
    return launcher(config) in LOCAL_LAUNCHERS


def launcher(config: DictConfig) -> str:
    """The launcher's class name: BasicLauncher, JoblibLauncher, SlurmLauncher, ..."""
    return str(config.hydra.launcher.get("_target_", "")).rsplit(".", 1)[-1]


def check_job_directories(config: DictConfig, jobs: list[list[str]]) -> None:
    """Two jobs named alike would share a directory, and the second would stop on the first's
    run after it had trained, ending the sweep there: `-m seed=0,0`, or a sweep over a key job
    names leave out (train.progress). Each job's name is hydra.sweep.subdir resolved with its
    override_dirname, as Hydra will; a subdir that reads more (hydra.job.num) is not checked."""
    from hydra._internal.config_loader_impl import get_overrides_dirname

    subdir = OmegaConf.to_container(config.hydra.sweep)["subdir"]  # (unresolved)
    naming, parser, first = config.hydra.job.config.override_dirname, OverridesParser.create(), {}
    for number, overrides in enumerate(jobs):
        dirname = get_overrides_dirname(parser.parse_overrides(overrides), list(naming.exclude_keys),
                                        naming.item_sep, naming.kv_sep)
        try:
            job = OmegaConf.create({"hydra": {"job": {"override_dirname": dirname}, "sweep": {"subdir": subdir}}})
            name = str(job.hydra.sweep.subdir)
        except OmegaConfBaseException:
            return
        if name in first:
            fail(ConfigError(
                f"sweep jobs #{first[name]} and #{number} ({' '.join(overrides)}) would share the directory "
                f"{Path(config.hydra.sweep.dir) / name} (job names leave out {', '.join(naming.exclude_keys)}); "
                "sweep over values that differ; no job has run"))
        first[name] = number
