"""train(cfg): build everything a run needs from the config, run the loop, write the outputs."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ganlab import checkpoint, loop
from ganlab.config import ConfigError, validate
from ganlab.data import build_sampler
from ganlab.losses import build_loss
from ganlab.metrics import build_evaluator
from ganlab.models import build_models, sample_noise
from ganlab.progress import Progress
from ganlab.tb_logger import TBLogger

log = logging.getLogger("ganlab")

# Independent random streams, so that e.g. evaluating more often never changes training.
STREAMS = {"init": 0, "data": 1, "noise": 2, "eval": 3}


def stream(seed: int, name: str) -> torch.Generator:
    return torch.Generator().manual_seed(seed * len(STREAMS) + STREAMS[name])


def build_optimizer(spec: DictConfig, params) -> torch.optim.Optimizer:
    if spec.name == "adam":
        return torch.optim.Adam(params, lr=spec.lr, betas=(spec.beta1, spec.beta2),
                                weight_decay=spec.weight_decay)
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov,
                           weight_decay=spec.weight_decay)


def build_gan(cfg: DictConfig, iterations: int) -> loop.GAN:
    torch.manual_seed(stream(cfg.seed, "init").initial_seed())
    G, D = build_models(cfg.model, cfg.dataset)
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


def train(cfg: DictConfig, run_dir: Path | None = None) -> float:
    """Train one GAN as configured; return its final main metric (KS for normal, FD for MNIST)."""
    validate(cfg)
    run_dir = Path(run_dir) if run_dir is not None else run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)

    t_cfg = cfg.train
    data_gen, noise_gen, eval_gen = (stream(cfg.seed, s) for s in ("data", "noise", "eval"))
    sampler = build_sampler(cfg.dataset, data_gen)
    iterations, eval_every = schedule(cfg, sampler)
    gan = build_gan(cfg, iterations)
    n_eval = cfg.dataset.eval_samples
    evaluator = build_evaluator(cfg.dataset, sampler.reference(n_eval, eval_gen),
                                sample_noise(cfg.model, cfg.dataset, n_eval, eval_gen))
    logger = TBLogger(run_dir, enabled=cfg.logger.tensorboard,
                      image_dir=run_dir / "images" if cfg.logger.save_images else None)
    progress = Progress(iterations, enabled=t_cfg.progress)
    history: list[dict] = []
    losses: list[torch.Tensor] = []

    def save(it: int) -> None:
        checkpoint.save_atomic({
            "iteration": it,
            "G": gan.G.state_dict(), "D": gan.D.state_dict(),
            "G_ema": gan.ema.model.state_dict() if gan.ema else None,
            "opt_g": gan.opt_g.state_dict(), "opt_d": gan.opt_d.state_dict(),
            "schedulers": [s.state_dict() for s in gan.schedulers],
            "rng": {"torch": torch.get_rng_state(), "noise": noise_gen.get_state()},
            "data": sampler.state_dict(),
            "history": history,
            "config": OmegaConf.to_container(cfg, resolve=True),
        }, run_dir / "checkpoints" / "last.pt")

    def every_iteration(it: int, stats: dict[str, torch.Tensor]) -> None:
        last = it == iterations
        if t_cfg.save_losses:
            losses.append(torch.stack([stats["loss/d"], stats["loss/g"]]))
        if it % t_cfg.log_every == 0 or last:
            values = {k: v.item() for k, v in stats.items()}
            logger.scalars(values, it)
            progress.update(it, {"d": values["loss/d"], "g": values["loss/g"]})
        if it % eval_every == 0 or last:
            evaluation = evaluator(gan.sampler)
            history.append({"iteration": it, **evaluation.scalars})
            logger.scalars({f"eval/{k}": v for k, v in evaluation.scalars.items()}, it)
            logger.histograms(evaluation.histograms, it)
            logger.images(evaluation.images, it)
        if it % t_cfg.checkpoint_every == 0 or last:
            save(it)

    log.info("run directory: %s", run_dir)
    t0 = time.perf_counter()
    loop.train(gan,
               real=lambda: sampler.sample(t_cfg.batch_size),
               noise=lambda: sample_noise(cfg.model, cfg.dataset, t_cfg.batch_size, noise_gen),
               start=0, iterations=iterations,
               d_steps=t_cfg.d_steps, g_steps=t_cfg.g_steps,
               every_iteration=every_iteration)
    wall = time.perf_counter() - t0
    progress.close()
    logger.close()

    final = history[-1]
    (run_dir / "metrics.json").write_text(json.dumps({"final": final, "history": history}, indent=1))
    (run_dir / "timing.json").write_text(json.dumps(
        {"wall_time_s": wall, "iterations": iterations, "iterations_per_s": iterations / wall}, indent=1))
    if t_cfg.save_losses:
        rows = torch.stack(losses).tolist()
        (run_dir / "losses.csv").write_text(
            "iteration,d_loss,g_loss\n" + "".join(f"{i + 1},{d},{g}\n" for i, (d, g) in enumerate(rows)))
    if t_cfg.save_weights:
        torch.save(gan.G.state_dict(), run_dir / "generator.pt")
        torch.save(gan.D.state_dict(), run_dir / "discriminator.pt")
    log.info("final: %s (%.1f s)", ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in final.items()), wall)
    return final["ks" if cfg.dataset.name == "normal" else "fd"]
