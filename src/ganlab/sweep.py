"""What a sweep needs beyond single runs: its own root and every job's config checked before the
first job runs, flat hyperparameters, a fair share of CPU threads, a Ctrl-C that lets joblib's
jobs save first, and the summary (sweep_summary.py) written at the sweep root when a multirun ends."""

from __future__ import annotations

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

import yaml
from hydra import compose
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ganlab.checkpoint import holders
from ganlab.config import RESUME_IF_THERE, ConfigError, count_as_given, direction_of, main_metric, validate
from ganlab.errors import STOP_SIGNALS, end_with, fail, on_ctrl_c, one_line, say
from ganlab.overrides import as_typed, task_overrides
from ganlab.sweep_summary import write_summary

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
    if f"resume={RESUME_IF_THERE}" in task_overrides(config.hydra):
        fail(ConfigError("resume=auto continues the sweep in hydra.sweep.dir, and none is given: multirun/DATE/TIME "
                         "is new each time, so there is nothing to continue; add the sweep's hydra.sweep.dir=DIR"))
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
        if config.hydra.sweeper.get("_target_") == self.BASIC:
            check_every_job(config)
        else:  # (Optuna and others choose values as they go)
            check_search(config)
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
                 *task_overrides(config.hydra)]
    try:  # the jobs as Hydra's basic sweeper lists them (an internal module: a check, not a dependency)
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        overrides = OverridesParser.create().parse_overrides(arguments)
        check_no_interval(overrides)
        (jobs,) = BasicSweeper.split_arguments(overrides, None)
    except Exception:  # noqa: BLE001  Hydra's sweeper reports what it cannot read, in one line
        return
    here, seeds = runs_here(config), []
    for number, overrides in enumerate(jobs):
        try:  # (one Hydra cannot compose stopped the sweep there, after it had written its multirun.yaml)
            cfg = compose(config.hydra.job.config_name, overrides=overrides)
            count_as_given(cfg, overrides)
            validate(cfg)
            seeds.append((cfg.seed, cfg.train.population))
            if here and (cfg.train.device not in ("auto", "cpu") or cfg.train.amp):  # (torch imported only then)
                from ganlab.distributed import check_machine

                check_machine(cfg.train.device, cfg.train.amp)
        except (ConfigError, HydraException, OmegaConfBaseException, yaml.YAMLError) as error:
            # exits here: Hydra turns a callback's exceptions into warnings
            fail(ConfigError(f"sweep job #{number} ({' '.join(overrides)}): {one_line(error)}; no job has run"))
    check_seeds_apart(jobs, seeds)
    check_job_directories(config, jobs)


def check_seeds_apart(jobs: list[list[str]], seeds: list[tuple[int, int]]) -> None:
    """Populations of one setting (jobs whose overrides differ only in seed=) must train different
    seeds: `-m seed=0,1,2 train.population=8` trained most seeds three times, and the summary's seed
    aggregate took the jobs for independent (`seeds`: each job's first seed and population)."""
    of_setting: dict[str, list[int]] = {}
    for number, overrides in enumerate(jobs):
        setting = " ".join(o for o in overrides if not o.startswith("seed="))
        (b, m) = seeds[number]
        for other in of_setting.setdefault(setting, []):
            (a, k) = seeds[other]
            if max(k, m) > 1 and a < b + m and b < a + k:
                fail(ConfigError(
                    f"sweep jobs #{other} and #{number} ({' '.join(overrides)}) train seeds {a}-{a + k - 1} and "
                    f"{b}-{b + m - 1} of one setting: copies of the one are copies of the other, trained twice and "
                    f"counted as independent in the summary; step the seeds by the population (seed=0,{m},{2 * m}), "
                    "or train one larger population; no job has run"))
        of_setting[setting].append(number)


def check_search(config: DictConfig) -> None:
    """A search's trials take values it chooses as it goes, but the rest of the command line can be
    checked before the first: a bad value there stopped the search at its first trial. And the
    search's direction must agree with optimized_metric: told to minimize a score, Optuna searched
    for the worst digits."""
    overrides = OverridesParser.create().parse_overrides(task_overrides(config.hydra))
    fixed = [override.input_line for override in overrides if not override.is_sweep_override()]
    try:
        cfg = compose(config.hydra.job.config_name, overrides=fixed)
        count_as_given(cfg, fixed)
        validate(cfg)
    except (ConfigError, HydraException, OmegaConfBaseException, yaml.YAMLError) as error:
        fail(ConfigError(f"{one_line(error)}; no trial has run"))
    direction, metric = OmegaConf.select(config, "hydra.sweeper.direction"), main_metric(cfg)
    if isinstance(direction, str) and direction != direction_of(metric):
        sought, better = ("lowest", "higher") if direction == "minimize" else ("highest", "lower")
        fail(ConfigError(f"hydra.sweeper.direction={direction} would search for the {sought} {metric}, where a "
                         f"{better} {metric} is better; drop hydra.sweeper.direction (the search follows "
                         "optimized_metric); no trial has run"))


def check_no_interval(overrides: list) -> None:
    """interval(LOW,HIGH), which a grid sweep cannot list: Hydra said only "BasicSweeper does not
    support sweep type : INTERVAL_SWEEP"."""
    from hydra.core.override_parser.types import ValueType

    for override in overrides:
        if override.value_type == ValueType.INTERVAL_SWEEP:
            fail(ConfigError(
                f"{override.input_line}: interval() is a range for a search to draw from, which a grid sweep (-m) "
                f"cannot list; give the values ({override.get_key_element()}=0.001,0.003,0.01, or "
                "range(START,STOP,STEP)), or search with Optuna, which draws from it: add hparams_search=normal_optuna "
                "(or mnist_optuna)"))


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
