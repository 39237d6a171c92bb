"""Train a GAN: `python train.py [experiment=NAME] [key=value ...]` (see README.md)."""

import atexit
import gc
import logging
import math
import os
import sys
from pathlib import Path

from ganlab.errors import report_ctrl_c

if __name__ == "__main__":  # before the imports below and Hydra, which are most of a start-up
    report_ctrl_c("stopped while starting" + (" the sweep" if {"-m", "--multirun"} & set(sys.argv) else ""))

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from ganlab.config import (check_group_choices, count_as_given, paths_from_where_typed, register_configs, typed,
                           validate)
from ganlab.errors import Diverged, UserError, fail, on_ctrl_c, run_reporting_user_errors
from ganlab.overrides import task_overrides, values_given
from ganlab.sweep import sweep_stopped

register_configs(Path(__file__).resolve().parent / "experiments")
# The Optuna sweeper's optuna 2.10 imports alembic, whose plugin set-up (alembic 1.15 and later)
# logs seven "setup plugin alembic..." lines at INFO, which Hydra prints at an Optuna search's start.
logging.getLogger("alembic").setLevel(logging.WARNING)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    on_ctrl_c(ctrl_c_line(hydra_cfg, trained=False))
    try:
        cfg = typed(cfg)  # (a run's saved config.yaml, given with --config-path and --config-name, has no schemas)
        for note in count_as_given(cfg, task_overrides(hydra_cfg)):
            logging.getLogger("ganlab").info(note)
        validate(cfg)
        if hydra_cfg.job.chdir:
            paths_from_where_typed(cfg)
        from ganlab.run import check_compile_cache, train  # torch loads only once the config is known to be valid

        check_compile_cache(cfg.train.compile)
        settle_garbage_collector()
        try:
            result = train(cfg)
        except Diverged as error:
            if not in_sweep:
                raise
            # In a sweep a diverged job is a result, not a crash: report it and let the sweep go on.
            logging.getLogger("ganlab").error("job failed: %s", error)
            return math.nan
        on_ctrl_c(ctrl_c_line(hydra_cfg, trained=True))
        return result
    except (UserError, OmegaConfBaseException) as error:  # (OmegaConf's: a value's ${...} that cannot resolve)
        fail(error)  # exits here, before Hydra adds its own report of the failed job


def ctrl_c_line(hydra_cfg: DictConfig, trained: bool) -> str:
    """What a Ctrl-C outside the training loop (which handles its own: run.stop_requests) leaves."""
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return sweep_stopped(hydra_cfg.sweep.dir)
    run_dir = hydra_cfg.runtime.output_dir
    if trained:
        return f"stopped after the run had finished; its files are in {run_dir}"
    return f"stopped before the first iteration: nothing was trained, and no checkpoint in {run_dir} changed"


def settle_garbage_collector() -> None:
    """Once torch is imported: freeze what exists (it lives as long as the process) and let the
    collector run again, now over what the run itself makes. Once: a sweep calls main() per job."""
    if not gc.isenabled():
        import torch._dynamo  # noqa: F401  (the first optimizer imports it anyway)
        gc.freeze()
        gc.enable()


def skip_collection_at_exit() -> None:
    """Freeze every object so Python's shutdown does not scan torch's again (1-2 s after a run's
    last line), unless triton is loaded (torch's CUDA builds import it with torch._dynamo): triton
    3.9's nanobind bindings report each of their objects left alive at exit as a leak, ~30 lines
    on stderr. There the shutdown collects (about 1 s), with automatic collections off."""
    if "triton" in sys.modules:
        gc.unfreeze()  # settle_garbage_collector froze triton's types with torch's
        gc.disable()
    else:
        gc.freeze()


# Hydra's flags that print something and stop without running the job
PRINT_ONLY = {"--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"}


def check_run_dir(argv: list[str], rank: int) -> None:
    """Before Hydra writes into the run directory: no other process may be training there, a
    resume= needs a checkpoint there, and a hydra.run.dir= given for a new run must not hold an
    earlier run (run.py checks every run's,
    sweeps' jobs included, but by then Hydra has replaced the directory's .hydra/). Under
    torchrun rank 0 alone checks that: the others may start after it has begun writing there."""
    if any(arg.split("=")[0] in PRINT_ONLY for arg in argv):
        return  # --cfg job, --help, ...: Hydra prints and stops, writing nothing
    given = values_given(argv)  # as Hydra reads them: resume="runs/my run" is runs/my run
    for key, default in (("hydra.run.dir", "outputs/DATE/TIME"), ("hydra.sweep.dir", "multirun/DATE/TIME")):
        if given.get(key) == "":  # Hydra would write into the current directory
            from ganlab.config import ConfigError

            fail(ConfigError(f"{key}= is empty; give a directory ({key}=runs/NAME; {key}=. for the current "
                             f"one), or leave {key} out for {default}"))
    resume = given.get("resume")
    new_run_dir = "hydra.run.dir" in given and rank == 0 and not {"-m", "--multirun"} & set(argv)
    if new_run_dir and resume not in (None, "auto", "") and not same_directory(resume, given["hydra.run.dir"]):
        from ganlab.config import ConfigError  # (Hydra would log there, and the run would train on in resume's)

        fail(ConfigError(f"resume={resume} continues that run in its own directory, and hydra.run.dir="
                         f"{given['hydra.run.dir']} names another; drop hydra.run.dir"))
    if resume in (None, "auto") and not new_run_dir:
        return
    from ganlab.checkpoint import (CheckpointError, check_not_diverged, check_not_in_use, check_resumable,
                                   check_unused, claim_early, resumable)

    try:
        if resume == "":
            raise CheckpointError("resume= is empty; give the directory of a run to continue (resume=RUN_DIR), "
                                  "or resume=auto")
        run_dir = str(resume if resume not in (None, "auto") else given["hydra.run.dir"])
        if rank == 0:  # (under torchrun the others start beside rank 0, which holds the directory)
            check_not_in_use(run_dir)  # no process trains there now: before Hydra writes its .hydra/ there
        if resume is not None:
            check_not_diverged(run_dir)
        if resume not in (None, "auto"):
            check_resumable(run_dir)
        elif not (resume == "auto" and resumable(run_dir)):
            check_unused(run_dir)
        if rank == 0 and not {"-m", "--multirun"} & set(argv):
            claim_early(run_dir)  # and hold it from now on: a second process started beside this one stops here
    except (CheckpointError, Diverged) as error:
        fail(error)


def same_directory(a: str, b: str) -> bool:
    return Path(os.path.expanduser(a)).resolve() == Path(os.path.expanduser(b)).resolve()


if __name__ == "__main__":
    # Importing torch makes ~300,000 objects that live as long as the process, and Python's
    # garbage collector scans them all again and again: while they are made (about 0.5 s of
    # start-up), during compilation, and at exit (1-2 s after the run is done). So no
    # collection until they exist (settle_garbage_collector), and where it can, none at exit
    # (skip_collection_at_exit; by then every file of the run is closed, and the exit handlers
    # registered before this one still run).
    gc.disable()
    atexit.register(skip_collection_at_exit)
    rank = int(os.environ.get("RANK", "0"))
    try:
        check_group_choices(sys.argv[1:], Path(__file__).resolve().parent / "conf")
    except UserError as error:
        fail(error)
    check_run_dir(sys.argv[1:], rank)
    if rank > 0:  # under torchrun, rank 0 alone writes a run directory. The others read the one given, where
        # resume=auto looks for a run to continue (with ".", they started the run afresh while rank 0 continued it,
        # and the processes fell out of step); without one given, "." keeps them from claiming outputs/DATE/TIME
        given = "hydra.run.dir" in values_given(sys.argv[1:])
        sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=disabled", *([] if given else ["hydra.run.dir=."])]
    run_reporting_user_errors(main)
