"""train(cfg): a run from start to end: its members (member.py), one step that trains them all,
the loop, and what is due between iterations and at the end."""

from __future__ import annotations

import logging
import math
import os
import shlex
import signal
import statistics
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Iterator

import torch
from omegaconf import DictConfig

from ganlab import distributed, functional, loop, memory, provenance
from ganlab.checkpoint import FAILURE, CheckpointError, check_not_diverged, check_unused, held, resumable
from ganlab.config import RESUME_IF_THERE, ConfigError, main_metric, typed, validate
from ganlab.distributed import Placement
from ganlab.errors import STOP_SIGNALS, Diverged, UserError, out_of_memory
from ganlab.member import Member, build_members
from ganlab.overrides import as_typed
from ganlab.population import Spread, check_same_shape, failed_before
from ganlab.progress import Progress
from ganlab.streams import Together
from ganlab.sweep import fair_threads, too_many_threads

log = logging.getLogger("ganlab")


class Interrupted(UserError):
    """Ctrl-C, SIGTERM or SIGHUP: the run saved a checkpoint and stopped."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


def run_dir_of() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def how_to_continue(run_dir: Path, resume_given: bool) -> str:
    """What to type to continue a stopped run: the same command, plus resume= if it had none."""
    from hydra.core.hydra_config import HydraConfig

    if resume_given:
        return "continue with the same command"
    if in_sweep():
        return ("continue the sweep with the same command plus resume=auto "
                + as_typed("hydra.sweep.dir", str(HydraConfig.get().sweep.dir)))
    return f"continue with the same command plus {as_typed('resume', str(run_dir))}"


# A signal this soon after the first is the same request delivered twice: a launcher that
# forwards the terminal's Ctrl-C to its jobs (submitit's local one) makes every job get two.
SAME_REQUEST_S = 1.0


@contextmanager
def stop_requests(requested: list[int]) -> Iterator[list[int]]:
    """Turn SIGINT/SIGTERM/SIGHUP (errors.STOP_SIGNALS) into a flag the loop checks (`requested`),
    so it can save before it stops. SIGHUP is the terminal or SSH connection closing: it killed
    the run outright, and all since its last checkpoint was lost (`nohup` ignores it, and the run
    then goes on). A second one (a second or more later) raises KeyboardInterrupt where the run is
    (the exception libraries let through), so a run that seems stuck, in a first compilation or a
    long evaluation, still stops when asked twice."""
    handlers, first_at = {}, []

    def request(signum: int, frame: object) -> None:
        if first_at and time.monotonic() - first_at[0] < SAME_REQUEST_S:
            return
        requested.append(signum)
        first_at.append(time.monotonic())
        if len(requested) > 1:
            # Raised inside a backward pass that compilation traces, the interrupt makes torch's
            # anomaly mode print the forward's stack (~30 lines, "Error detected in ReluBackward0"):
            # not an error of the run's, which stops here as asked.
            warnings.filterwarnings("ignore", message="Error detected in ")
            raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:  # a script's `python train.py &` ignores Ctrl-C
                handlers[signum] = signal.signal(signum, request)
    try:
        yield requested
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def process_age() -> float | None:
    """Seconds since this process started (Linux's /proc; None elsewhere): start-up as a user
    waits for it, Python's imports included."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time in ticks after boot
    except (OSError, ValueError, IndexError):
        return None


def build_step(members: list[Member]):
    """The function that runs one iteration of every member: the plain loop, or the fused one
    (compiled with train.compile, vmapped over the copies with train.population)."""
    t = members[0].t
    if len(members) == 1 and not t.compile:
        gan, real, noise = members[0].gan, members[0].real, members[0].noise
        return lambda: loop.iteration(gan, real, noise, t.d_steps, t.g_steps)
    fused = functional.FusedIteration([m.gan for m in members], compile=t.compile, cuda_graph=t.cuda_graph)
    real, noise = Together([m.real for m in members]), Together([m.noise for m in members])
    if len(members) == 1:
        return lambda: fused(*(x[0] for x in functional.draw(real, noise, t.d_steps, t.g_steps)))
    return lambda: fused(*functional.draw(real, noise, t.d_steps, t.g_steps))


def check_fused(cfg: DictConfig, placement: Placement) -> None:
    """What the fused iteration cannot do, found before any run directory is written."""
    t = cfg.train
    if (t.compile or t.population > 1) and placement.world > 1:
        raise ConfigError("train.compile and train.population do not run under torchrun yet; "
                          "drop them or run a single process")


def device_advice(cfg: DictConfig, placement: Placement) -> str | None:
    """A hint where train.device=auto put one 1-D GAN on a GPU without the CUDA graph: its steps
    are too small to keep a GPU busy, and each of its few dozen kernels waits on its launch."""
    t = cfg.train
    if t.device == "auto" and placement.device.type == "cuda" and cfg.dataset.name == "normal" \
            and t.population == 1 and not (t.compile and t.cuda_graph):
        return ("the 1-D GAN trains on the GPU (train.device=auto), where each of its small operations waits "
                "on a kernel launch: add train.compile=true, whose iteration the GPU replays as one CUDA graph "
                "(the book's recipe on an H200: 0.55 ms an iteration against 7.6 ms, after compiling once), "
                "or add train.device=cpu (experiments/README.md, \"On a GPU\")")
    return None


def train(cfg: DictConfig, run_dir: Path | None = None) -> float:
    """Train one GAN as configured (or continue `cfg.resume`), or train.population copies of it
    with consecutive seeds; return the final main metric (KS for normal, FD for MNIST), the
    mean over the copies of a population."""
    cfg = typed(cfg)
    validate(cfg)
    placement = distributed.setup(cfg.train.device)
    distributed.reproducible(placement.device, cfg.train.deterministic)
    resume_given = cfg.resume is not None
    cfg, run_dir = resolve_resume(compiled_where_it_can(cfg, placement), run_dir)
    if resume_given:
        check_not_diverged(run_dir)
    again = how_to_continue(run_dir, resume_given)
    with held(run_dir) if placement.is_main else nullcontext():  # rank 0 alone writes there
        try:
            with memory.within_available_memory() if capped(placement) else nullcontext():
                return train_in(cfg, run_dir, placement, again)
        except (MemoryError, RuntimeError) as error:
            if not (too_big := out_of_memory(error, placement.device.type)):
                raise
            smaller = "lower train.batch_size (or the model's size, train.population or dataset.eval_samples)"
            raise UserError(f"{too_big}; {kept(run_dir, again, smaller)}") from None


def capped(placement: Placement) -> bool:
    """Whether the run caps its address space at the memory available (memory.within_available_memory):
    CPU runs on machines without a GPU. CUDA reserves far more address space than memory, and
    Inductor's compile workers, started under the cap, would keep it for a later CUDA run in the
    same process (a sweep's worker): untried on a GPU machine, so not done there."""
    return placement.device.type == "cpu" and not torch.cuda.is_available()


def train_in(cfg: DictConfig, run_dir: Path, placement: Placement, again: str) -> float:
    """train() in its run directory, which this process holds; `again` says how to continue it."""
    torch.set_num_threads(cfg.train.threads or fair_threads(placement.local_world))
    if warning := too_many_threads(cfg.train.threads, placement.local_world):
        log.warning(warning)
    memory.keep_freed_memory()
    check_fused(cfg, placement)
    population = cfg.train.population
    members, left_out = members_to_train(cfg, run_dir, placement)
    first = members[0]
    iterations, start = first.iterations, first.start
    if start >= iterations:
        return already_ended(cfg, members, left_out, run_dir, placement)
    if start:
        log.info("resuming %s at iteration %d of %d", run_dir, start, iterations)
    if first.changed:
        log.warning("resumed with other settings than the run trained with, from iteration %d on: %s",
                    start, "; ".join(first.changed))
    if placement.is_main:  # environment.json: what this process runs on, in each run directory
        environment, changes = provenance.record([run_dir] + ([m.run_dir for m in members] if population > 1 else []),
                                                 start, placement.device, placement.world)
        for member in members:
            member.describe_in_tensorboard(environment)
        if changes:
            log.warning("resumed under other conditions than the run started in (%s): it goes on, but may not "
                        "match the same run never stopped bit for bit", "; ".join(changes))
    spread = Spread(run_dir, members, start, left_out, enabled=placement.is_main) if population > 1 else None
    single = len(members) == 1  # the step's statistics have no copy dimension
    step = build_step(members)
    log_every = first.t.log_every
    progress = Progress(iterations, start=start, enabled=cfg.train.progress and placement.is_main)

    finite = None  # per copy: no NaN or infinite loss so far (a tensor on the losses' device)
    save_losses = first.t.save_losses
    first_iteration_s = None  # includes compiling the step (train.compile, train.population)

    def every_iteration(it: int, stats: dict[str, torch.Tensor]) -> None:
        nonlocal finite, first_iteration_s
        if first_iteration_s is None:
            first_iteration_s = time.perf_counter() - t0
            progress.restart_clock(it)
            if first.t.compile:
                log.info("compiled in %.1f s", first_iteration_s)
        # NaN guard without a host sync: the flag is read only when something is due below.
        ok = torch.isfinite(stats["loss/d"] + stats["loss/g"])
        finite = ok if finite is None else finite & ok
        if save_losses:
            losses = torch.stack([stats["loss/d"], stats["loss/g"]], dim=-1)
            for k, member in enumerate(members):
                member.losses.append(losses if single else losses[k])
        stop = list(requested)  # read once: a signal arriving mid-way is handled next iteration
        if placement.world > 1:  # torchrun's processes stop together, at an iteration where they all log
            stop = distributed.agreed_stop(stop, placement) if first.plan(it)[0] else []
        if not (stop or any(first.plan(it))):
            return
        flags = [bool(finite)] if single else finite.tolist()
        for k, member in enumerate(members):
            if member.failed:
                continue
            own = stats if single else {key: value[k] for key, value in stats.items()}
            try:
                member.after(it, own, flags[k], stop_requested=bool(stop))
            except Diverged as error:
                if population == 1:
                    raise
                log.error("seed %d failed: %s", member.cfg.seed, error)  # the other copies go on
                (member.run_dir / FAILURE).write_text(f"diverged: {error}\n")
        if spread and first.plan(it)[1]:
            spread.log(it)
        if it % log_every == 0 or it == iterations:
            progress.update(it, {"d": stats["loss/d"].float().mean().item(),
                                 "g": stats["loss/g"].float().mean().item()})
        if stop and it != iterations:
            name = signal.Signals(stop[0]).name
            raise Interrupted(f"{name} at iteration {it}: checkpoint saved in {run_dir}; {again}", stop[0])

    log.info("run directory: %s", run_dir)
    if placement.is_main and (advice := device_advice(cfg, placement)):
        log.info(advice)
    if first.t.compile:  # otherwise a silent wait
        log.info("compiling the training iteration (train.compile=true): about 20-50 s the first time on a "
                 "machine, a few seconds once PyTorch's on-disk cache holds it")
    elif not single and why_not_compile(placement) is None:  # eager vmap pays its batching rules on every operation
        log.info("the %d copies run eagerly under vmap; add train.compile=true to run them 1.8-2.6x faster "
                 "(the 1-D recipes on 2 cores, compilation included; experiments/README.md)", len(members))
    startup_s = process_age()  # from `python train.py` to here, the first iteration
    t0 = time.perf_counter()
    requested: list[int] = []  # SIGINT / SIGTERM / SIGHUP received, by stop_requests
    try:
        with stop_requests(requested):  # up to the last file written: a Ctrl-C there must not cut finish() short
            try:
                loop.train(step, [s for m in members for s in m.gan.schedulers], start, iterations,
                           every_iteration)
            finally:
                progress.close()
                distributed.teardown([m.gan for m in members])
            if not placement.is_main:
                return math.nan
            timing = {"wall": time.perf_counter() - t0, "first_iteration_s": first_iteration_s, "startup_s": startup_s}
            finals = finish(members, spread, run_dir, placement, **timing)
    except BaseException as error:
        if isinstance(error, Diverged) and placement.is_main:  # the run's, or a population's whose every copy
            (run_dir / FAILURE).write_text(f"diverged: {error}\n")  # failed (each copy's: its own, above)
        for logger in [m.logger for m in members] + ([spread.logger] if spread else []):
            with suppress(OSError):  # (a full disk: what it held is lost either way)
                logger.close()
        if isinstance(error, KeyboardInterrupt) and len(requested) > 1:
            names = [signal.Signals(signum).name for signum in requested[:2]]
            asked = f"{names[0]} twice" if names[0] == names[1] else ", then ".join(names)
            raise Interrupted(f"{asked}: stopped at once, without saving; {kept(run_dir, again)}", requested[1]) from None
        if isinstance(error, OSError):  # a full disk or quota, a file-size limit, a file system gone
            where = error.filename or f"the run's files in {run_dir}"
            raise UserError(f"could not write {where} ({error.strerror or error}); "
                            f"{kept(run_dir, again, 'make room')}") from None
        raise
    if requested:  # asked in the last iteration or during the final writes: the run is complete; a sweep stops
        rest = f"; the sweep stopped before its next job: {again}" if in_sweep() else ""
        raise Interrupted(f"{signal.Signals(requested[0]).name} at the end of the run: it had finished, and its "
                          f"final files are written in {run_dir}{rest}", requested[0])
    return population_metric(cfg, finals)


def kept(run_dir: Path, again: str, first: str = "") -> str:
    """What a run stopped without saving keeps, and what to do next (`first`, then `again`)."""
    if resumable(run_dir):
        return f"the newest checkpoint in {run_dir} is kept; {first + ', then ' if first else ''}{again}"
    return f"no checkpoint had been saved: {first + ', ' if first else ''}remove {run_dir} and start again"


def already_ended(cfg: DictConfig, members: list[Member], left_out: list[int], run_dir: Path,
                  placement: Placement) -> float:
    """A resumed run that is at its last iteration has nothing to train. But where the process that
    trained it stopped after its last checkpoint and before its final files (kill -9, a second
    Ctrl-C, a job's time limit), metrics.json is missing, and a sweep's summary would list the job
    as unfinished for ever: they are written now, from that checkpoint."""
    first = members[0]
    if placement.is_main and not (run_dir / "metrics.json").exists():
        log.info("%s is at its last iteration, %d, but the process that trained it stopped before writing its final "
                 "files (metrics.json): writing them from its last checkpoint", run_dir, first.start)
        spread = Spread(run_dir, members, first.start, left_out) if cfg.train.population > 1 else None
        return population_metric(cfg, finish(members, spread, run_dir, placement, None, None, None))
    for member in members:
        member.logger.close()
    log.info("nothing left to do: %s is at iteration %d of %d; raise train.iterations "
             "(or train.epochs) to extend it", run_dir, first.start, first.iterations)
    return population_metric(cfg, [m.history[-1] for m in members])


# The first torch whose Dynamo traces the fused iteration (torch.func's grad over functional_call)
# as one graph. torch 2.4.1 broke it into many small graphs, and the book's 1-D recipe ran 3x
# slower compiled than plain (3.1-3.3 against 1.5 ms an iteration); 2.5.1 and later compile it whole.
COMPILES_WHOLE = "2.5"


def compiled_where_it_can(cfg: DictConfig, placement: Placement) -> DictConfig:
    """cfg, less train.compile where compiling cannot work or pay, the book's 1-D preset among
    the runs it would have slowed or stopped: the plain loop runs the same arithmetic instead,
    and the log says why."""
    if not cfg.train.compile or (why := why_not_compile(placement)) is None:
        return cfg
    problem, fix = why
    log.warning("%s: training without compiling, the same arithmetic; %s", problem, fix)
    cfg = cfg.copy()
    cfg.train.compile = False
    return cfg


def why_not_compile(placement: Placement) -> tuple[str, str] | None:
    """An older torch (COMPILES_WHOLE), or a CPU without a C++ compiler (a slim container, say),
    where Inductor cannot build its kernels and the first iteration failed with its traceback."""
    if torch.__version__ < COMPILES_WHOLE:
        return (f"train.compile=true needs torch {COMPILES_WHOLE} or later (torch {torch.__version__} breaks the "
                "iteration into many small compiled graphs, slower than the plain loop)", "upgrade torch to compile")
    if placement.device.type != "cpu":
        return None
    try:
        from torch._inductor import cpp_builder
    except ImportError:
        return None  # (another torch: compilation reports for itself)
    # (torch 2.4 has it under a private name; a torch with neither: compilation reports for itself)
    find_compiler = getattr(cpp_builder, "get_cpp_compiler", getattr(cpp_builder, "_get_cpp_compiler", None))
    try:
        if find_compiler is not None:
            find_compiler()
        return None
    except Exception as error:  # noqa: BLE001  torch's InvalidCxxCompiler, or whatever the search met
        return (f"train.compile=true needs a C++ compiler on a CPU ({str(error).splitlines()[0]})",
                "install g++ or clang++ (or point CXX at one) to compile")


def check_compile_cache(compiling: bool) -> None:
    """PyTorch makes the folder its compiler keeps kernels in (TORCHINDUCTOR_CACHE_DIR, by default
    TMP/torchinductor_USER) when torch._dynamo is imported, as an optimizer's first step does,
    compiled or not; train.compile then writes there. Where it cannot (another user's folder of
    that name in a shared /tmp, a read-only file system), every run stopped with "cannot write
    ...; choose a writable directory with hydra.run.dir=DIR", which was no fix, and a compiled
    one with Inductor's traceback at its first iteration."""
    fix = "point TORCHINDUCTOR_CACHE_DIR at a folder you can write: TORCHINDUCTOR_CACHE_DIR=$HOME/.cache/torchinductor"
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir  # (its package's import makes the folder)

        folder = cache_dir()
    except ImportError:  # (another torch: its own error says)
        return
    except OSError as error:
        raise UserError(f"PyTorch cannot make its compile cache {error.filename} ({error.strerror}), which it needs "
                        f"even without train.compile; {fix} python train.py ...") from None
    if compiling:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            raise UserError(f"PyTorch cannot write its compile cache {folder} ({error.strerror}), where "
                            f"train.compile=true keeps its kernels; {fix} python train.py ..., or drop "
                            "train.compile") from None


def resolve_resume(cfg: DictConfig, run_dir: Path | None) -> tuple[DictConfig, Path]:
    """The run directory, and cfg.resume as that directory or None: resume=auto continues the
    directory's run where it has checkpoints (a sweep run again continues its jobs), else starts one."""
    if cfg.resume != RESUME_IF_THERE:
        return cfg, Path(cfg.resume or run_dir or run_dir_of()).expanduser()
    run_dir = Path(run_dir or run_dir_of())
    cfg = cfg.copy()
    cfg.resume = str(run_dir) if resumable(run_dir) else None
    return cfg, run_dir


def members_to_train(cfg: DictConfig, run_dir: Path, placement: Placement) -> tuple[list[Member], list[int]]:
    """The run's Members, checked: a new run's directory is unused; a resumed population's
    copies continue from the same iteration (those that failed before are left out, returned)."""
    if cfg.resume:
        check_same_shape(run_dir, cfg.train.population, cfg.seed)
    elif placement.is_main:
        check_unused(run_dir)
    left_out = failed_before(cfg, run_dir)
    members = build_members(cfg, run_dir, placement, left_out)  # (not none: train() stops where every copy failed)
    if left_out:
        log.info("left out: seeds %s, which failed before (seed_N/failure.txt)", left_out)
    if len({m.start for m in members}) > 1:
        raise CheckpointError(f"{run_dir}: the copies' checkpoints are at different iterations "
                              f"({sorted({m.start for m in members})}); resume each seed_* run on its own")
    return members, left_out


def finish(members: list[Member], spread: Spread | None, run_dir: Path, placement: Placement,
           wall: float | None, first_iteration_s: float | None, startup_s: float | None) -> list[dict]:
    """Each finished member's final files, the population's, and the run's last log line;
    returns the finished members' final metrics. `wall` None: this process trained nothing
    (already_ended), and timing.json, which describes the process that trained, is not written."""
    for member in members:
        if member.failed:
            member.logger.close()
    finals = [m.finish(wall, first_iteration_s, startup_s, placement) for m in members if not m.failed]
    if not finals:
        spread.logger.close()
        raise Diverged(f"every copy of the population diverged; see {run_dir}/seed_*/failure.txt")
    took = "" if wall is None else f" ({wall:.1f} s)"
    if spread is None:
        if members[0].t.keep_best:
            best, metric = members[0].best(), main_metric(members[0].cfg)
            log.info("best: %s %.4g at iteration %d (generate.py %s checkpoint=best)",
                     metric, best[metric], best["iteration"], shlex.quote(f"run={run_dir}"))
        log.info("final: %s%s", ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                          for k, v in finals[0].items()), took)
    else:  # the copies' mean and spread, as metrics.json has them; each copy's row is in summary.md
        summary = spread.finish(wall, first_iteration_s, startup_s)
        values = ", ".join(f"{k} {summary[k]:.4g} ± {summary[f'{k}_std']:.2g}" for k in finals[0] if k != "iteration")
        log.info("final: %d copies (%d failed), iteration %d, %s%s; each copy in %s", summary["copies"],
                 summary["failed"], summary["iteration"], values, took, run_dir / "summary.md")
    return finals


def population_metric(cfg: DictConfig, finals: list[dict]) -> float:
    """The value train() returns for sweepers: the final `optimized_metric`, mean over the copies."""
    return statistics.fmean(final[main_metric(cfg)] for final in finals)
