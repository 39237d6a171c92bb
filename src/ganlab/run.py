"""train(cfg): build everything a run needs from the config, run the loop, write the outputs."""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from omegaconf import DictConfig, OmegaConf

from ganlab import checkpoint, distributed, loop
from ganlab.checkpoint import CheckpointError
from ganlab.config import ConfigError, validate
from ganlab.errors import UserError
from ganlab.data import build_sampler
from ganlab.distributed import Placement
from ganlab.losses import build_loss
from ganlab.metrics import build_evaluator
from ganlab.models import build_models, sample_noise
from ganlab.progress import Progress
from ganlab.sweep import fair_threads, flat_hparams
from ganlab.tb_logger import TBLogger

log = logging.getLogger("ganlab")

# Independent random streams, so that e.g. evaluating more often never changes training.
STREAMS = {"init": 0, "data": 1, "noise": 2, "eval": 3}


def stream(seed: int, name: str, rank: int = 0) -> torch.Generator:
    """Under torchrun every process draws its own data and noise (rank > 0 shifts the seed)."""
    return torch.Generator().manual_seed(seed * len(STREAMS) + STREAMS[name] + 1_000_003 * rank)


def build_optimizer(spec: DictConfig, params) -> torch.optim.Optimizer:
    if spec.name == "adam":
        return torch.optim.Adam(params, lr=spec.lr, betas=(spec.beta1, spec.beta2),
                                weight_decay=spec.weight_decay)
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov,
                           weight_decay=spec.weight_decay)


def build_gan(cfg: DictConfig, iterations: int, placement: Placement = Placement(torch.device("cpu"))) -> loop.GAN:
    torch.manual_seed(stream(cfg.seed, "init").initial_seed())  # the same start on every rank
    G, D = (net.to(placement.device) for net in build_models(cfg.model, cfg.dataset))
    opt_g = build_optimizer(cfg.optimizer.g, G.parameters())
    opt_d = build_optimizer(cfg.optimizer.d, D.parameters())
    schedulers = []
    if cfg.train.lr_schedule == "linear":  # anneal to 0 at the last iteration
        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, lambda it: max(0.0, 1.0 - it / iterations))
                      for opt in (opt_g, opt_d)]
    return loop.GAN(
        G=G, D=D, opt_g=opt_g, opt_d=opt_d,
        loss=build_loss(cfg.train.loss),
        schedulers=schedulers,
        ema=loop.EMA(G, cfg.train.g_ema) if cfg.train.g_ema > 0 else None,
        r1_gamma=cfg.train.r1_gamma,
        autocast=distributed.autocast(placement, cfg.train.amp),
        ddp_G=distributed.wrap(G, placement), ddp_D=distributed.wrap(D, placement),
    )


def schedule(cfg: DictConfig, sampler) -> tuple[int, int]:
    """(iterations, eval_every) in iterations, from either iterations or epochs."""
    t = cfg.train
    per_epoch = sampler.batches_per_epoch(t.batch_size) if t.epochs or t.eval_every_epochs else 0
    if (t.epochs or t.eval_every_epochs) and per_epoch == 0:
        raise ConfigError(f"train.batch_size={t.batch_size} is larger than the {len(sampler.data)} "
                          "training digits; lower it or use more data (dataset.n_train)")
    iterations = t.epochs * per_epoch if t.epochs else t.iterations
    eval_every = t.eval_every_epochs * per_epoch if t.eval_every_epochs else t.eval_every
    return iterations, eval_every


def run_dir_of(cfg: DictConfig) -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


class Diverged(UserError):
    """A loss became NaN or infinite."""


class Interrupted(UserError):
    """Ctrl-C or SIGTERM: the run saved a checkpoint and stopped."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


@contextmanager
def stop_requests() -> Iterator[list[int]]:
    """Turn SIGINT/SIGTERM into a flag the loop checks, so it can save before it stops."""
    requested: list[int] = []
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            handlers[signum] = signal.signal(signum, lambda num, frame: requested.append(num))
    try:
        yield requested
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def check_compatible(saved: dict, cfg: DictConfig, path: Path) -> None:
    """A checkpoint continues only the same GAN on the same data."""
    for key in ("model", "dataset"):
        if saved[key] != OmegaConf.to_container(cfg[key], resolve=True):
            raise CheckpointError(
                f"{path}: checkpoint is of {key} {saved[key]}, the command line asks for "
                f"{OmegaConf.to_container(cfg[key], resolve=True)}; resume with the run's own overrides")


def train(cfg: DictConfig, run_dir: Path | None = None) -> float:
    """Train one GAN as configured (or continue `cfg.resume`); return its final main metric
    (KS for normal, FD for MNIST)."""
    validate(cfg)
    placement = distributed.setup(cfg.train.device)
    main = placement.is_main  # only rank 0 evaluates and writes
    run_dir = Path(cfg.resume or run_dir or run_dir_of(cfg))
    saved = checkpoint.load(checkpoint.last_in(run_dir)) if cfg.resume else None
    if saved:
        check_compatible(saved["config"], cfg, run_dir)
    try:
        if main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    except OSError as error:
        raise UserError(f"cannot write to the run directory {run_dir} ({error.strerror}); "
                        "choose another with hydra.run.dir=DIR") from None
    torch.set_num_threads(cfg.train.threads or fair_threads(placement.world))

    t_cfg = cfg.train
    device = placement.device
    data_gen, noise_gen = (stream(cfg.seed, s, placement.rank) for s in ("data", "noise"))
    eval_gen = stream(cfg.seed, "eval")
    sampler = build_sampler(cfg.dataset, data_gen)
    iterations, eval_every = schedule(cfg, sampler)
    gan = build_gan(cfg, iterations, placement)
    n_eval = cfg.dataset.eval_samples
    evaluator = build_evaluator(cfg.dataset, sampler.reference(n_eval, eval_gen).to(device),
                                sample_noise(cfg.model, cfg.dataset, n_eval, eval_gen).to(device))
    history: list[dict] = []
    losses: list[torch.Tensor] = []
    start = 0
    if saved:
        start = restore(saved, gan, sampler, noise_gen, placement.rank)
        history, losses = saved["history"], list(saved["losses"])
        if start >= iterations:
            log.info("nothing left to do: %s is at iteration %d of %d; raise train.iterations "
                     "(or train.epochs) to extend it", run_dir, start, iterations)
            return main_metric(cfg, history[-1])
        log.info("resuming %s at iteration %d of %d", run_dir, start, iterations)

    # purge_step drops the events a killed run logged after its last checkpoint (steps > start):
    # TensorBoard shows one unbroken curve.
    logger = TBLogger(run_dir, enabled=cfg.logger.tensorboard and main,
                      purge_step=start + 1 if start else None,
                      image_dir=run_dir / "images" if cfg.logger.save_images and main else None)
    progress = Progress(iterations, start=start, enabled=t_cfg.progress and main)

    def save(it: int) -> None:
        checkpoint.save_atomic(
            state_of(gan, sampler, noise_gen, it, history, losses, cfg),
            run_dir / "checkpoints", keep=t_cfg.keep_checkpoints)

    def every_iteration(it: int, stats: dict[str, torch.Tensor]) -> None:
        last = it == iterations
        for net in ("d", "g"):  # stop before a NaN can reach a checkpoint (a host read; syncs on GPUs)
            if not torch.isfinite(stats[f"loss/{net}"]):
                raise Diverged(f"the {net.upper()} loss became {stats[f'loss/{net}'].item()} at iteration "
                               f"{it}; {run_dir}/checkpoints/last.pt keeps the last good state; "
                               "lower the learning rates or set train.r1_gamma")
        if t_cfg.save_losses:
            losses.append(torch.stack([stats["loss/d"], stats["loss/g"]]))
        if it % t_cfg.log_every == 0 or last:
            values = {k: v.item() for k, v in stats.items()}
            logger.scalars(values, it)
            progress.update(it, {"d": values["loss/d"], "g": values["loss/g"]})
        if main and (it % eval_every == 0 or last):
            evaluation = evaluator(gan.sampler)
            history.append({"iteration": it, **evaluation.scalars})
            logger.scalars({f"eval/{k}": v for k, v in evaluation.scalars.items()}, it)
            logger.histograms(evaluation.histograms, it)
            logger.images(evaluation.images, it)
        if main and (it % t_cfg.checkpoint_every == 0 or last or requested):
            save(it)
        if requested and not last:
            name = signal.Signals(requested[0]).name
            raise Interrupted(f"{name} at iteration {it}: checkpoint saved in {run_dir}/checkpoints; "
                              f"continue with the same command plus resume={run_dir}", requested[0])

    log.info("run directory: %s", run_dir)
    t0 = time.perf_counter()
    try:
        with stop_requests() as requested:
            loop.train(gan,
                       real=lambda: sampler.sample(t_cfg.batch_size).to(device, non_blocking=True),
                       noise=lambda: sample_noise(cfg.model, cfg.dataset, t_cfg.batch_size,
                                                  noise_gen).to(device, non_blocking=True),
                       start=start, iterations=iterations,
                       d_steps=t_cfg.d_steps, g_steps=t_cfg.g_steps,
                       every_iteration=every_iteration)
        if not main:
            return math.nan
        final = history[-1]
        logger.hparams(flat_hparams(cfg), {f"final/{k}": v for k, v in final.items() if k != "iteration"})
    except Diverged as error:
        if main:
            (run_dir / "failure.txt").write_text(f"diverged: {error}\n")
        raise
    finally:
        progress.close()
        logger.close()
        distributed.teardown()
    wall = time.perf_counter() - t0
    (run_dir / "metrics.json").write_text(json.dumps({"final": final, "history": history}, indent=1))
    (run_dir / "timing.json").write_text(json.dumps(
        {"wall_time_s": wall, "iterations": iterations - start,
         "iterations_per_s": (iterations - start) / wall, "threads": torch.get_num_threads(),
         "world_size": placement.world, "device": str(device)}, indent=1))
    if t_cfg.save_losses:
        rows = torch.stack(losses).tolist()
        (run_dir / "losses.csv").write_text(
            "iteration,d_loss,g_loss\n" + "".join(f"{i + 1},{d},{g}\n" for i, (d, g) in enumerate(rows)))
    if t_cfg.save_weights:
        torch.save(gan.G.state_dict(), run_dir / "generator.pt")
        torch.save(gan.D.state_dict(), run_dir / "discriminator.pt")
    log.info("final: %s (%.1f s)", ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in final.items()), wall)
    return main_metric(cfg, final)


def main_metric(cfg: DictConfig, metrics: dict) -> float:
    """The value train() returns for sweepers: `optimized_metric`, or KS (normal) / FD (MNIST)."""
    return metrics[cfg.optimized_metric or ("ks" if cfg.dataset.name == "normal" else "fd")]


def state_of(gan: loop.GAN, sampler, noise_gen, it: int, history, losses, cfg) -> dict:
    """Everything needed to continue exactly: networks, optimizers, schedules, random states."""
    return {
        "iteration": it,
        "G": gan.G.state_dict(), "D": gan.D.state_dict(),
        "G_ema": gan.ema.model.state_dict() if gan.ema else None,
        "ema_updates": gan.ema.updates if gan.ema else 0,
        "opt_g": gan.opt_g.state_dict(), "opt_d": gan.opt_d.state_dict(),
        "schedulers": [s.state_dict() for s in gan.schedulers],
        "rng": {"torch": torch.get_rng_state(), "noise": noise_gen.get_state()},
        "data": sampler.state_dict(),
        "history": history,
        "losses": torch.stack(losses) if losses else torch.zeros(0, 2),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def restore(state: dict, gan: loop.GAN, sampler, noise_gen, rank: int = 0) -> int:
    """Load a checkpoint into freshly built objects; return the iteration to continue from.

    The checkpoint holds rank 0's random streams. Under torchrun the other ranks start fresh
    streams of their own (seeded by rank and iteration), so they keep drawing different data.
    """
    gan.G.load_state_dict(state["G"])
    gan.D.load_state_dict(state["D"])
    if gan.ema is not None and state["G_ema"] is not None:
        gan.ema.model.load_state_dict(state["G_ema"])
        gan.ema.updates = state["ema_updates"]
    gan.opt_g.load_state_dict(state["opt_g"])
    gan.opt_d.load_state_dict(state["opt_d"])
    for scheduler, saved in zip(gan.schedulers, state["schedulers"]):
        scheduler.load_state_dict(saved)
    torch.set_rng_state(state["rng"]["torch"])
    if rank == 0:
        noise_gen.set_state(state["rng"]["noise"])
        sampler.load_state_dict(state["data"])
    else:
        noise_gen.manual_seed(noise_gen.initial_seed() + state["iteration"])
        sampler.generator.manual_seed(sampler.generator.initial_seed() + state["iteration"])
    return state["iteration"]
