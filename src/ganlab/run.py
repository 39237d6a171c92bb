"""train(cfg): build everything a run needs from the config, run the loop, write the outputs."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ganlab import checkpoint, loop
from ganlab.config import validate
from ganlab.data import build_sampler
from ganlab.losses import build_loss
from ganlab.metrics import NormalEvaluator
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


def build_schedulers(cfg: DictConfig, *optimizers) -> list:
    if cfg.train.lr_schedule == "constant":
        return []
    total = cfg.train.iterations
    return [torch.optim.lr_scheduler.LambdaLR(opt, lambda it: max(0.0, 1.0 - it / total))
            for opt in optimizers]


def build_gan(cfg: DictConfig) -> loop.GAN:
    torch.manual_seed(stream(cfg.seed, "init").initial_seed())
    G, D = build_models(cfg.model, cfg.dataset)
    opt_g = build_optimizer(cfg.optimizer.g, G.parameters())
    opt_d = build_optimizer(cfg.optimizer.d, D.parameters())
    return loop.GAN(
        G=G, D=D, opt_g=opt_g, opt_d=opt_d,
        loss=build_loss(cfg.train.loss),
        schedulers=build_schedulers(cfg, opt_g, opt_d),
        ema=loop.EMA(G, cfg.train.g_ema) if cfg.train.g_ema > 0 else None,
        r1_gamma=cfg.train.r1_gamma,
    )


def build_evaluator(cfg: DictConfig):
    gen = stream(cfg.seed, "eval")
    n = cfg.dataset.eval_samples
    real = build_sampler(cfg.dataset, gen).sample(n)
    return NormalEvaluator(cfg.dataset, real, sample_noise(cfg.model, cfg.dataset, n, gen))


def run_dir_of(cfg: DictConfig) -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def train(cfg: DictConfig, run_dir: Path | None = None) -> float:
    """Train one GAN as configured; return the final KS (or the configured metric)."""
    validate(cfg)
    run_dir = Path(run_dir) if run_dir is not None else run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)

    t_cfg = cfg.train
    gan = build_gan(cfg)
    data_gen, noise_gen = stream(cfg.seed, "data"), stream(cfg.seed, "noise")
    sampler = build_sampler(cfg.dataset, data_gen)
    evaluator = build_evaluator(cfg)
    logger = TBLogger(run_dir, enabled=cfg.logger.tensorboard)
    progress = Progress(t_cfg.iterations, enabled=t_cfg.progress)
    history: list[dict] = []

    def save(it: int) -> None:
        checkpoint.save_atomic({
            "iteration": it,
            "G": gan.G.state_dict(), "D": gan.D.state_dict(),
            "G_ema": gan.ema.model.state_dict() if gan.ema else None,
            "opt_g": gan.opt_g.state_dict(), "opt_d": gan.opt_d.state_dict(),
            "schedulers": [s.state_dict() for s in gan.schedulers],
            "rng": {"torch": torch.get_rng_state(), "data": data_gen.get_state(),
                    "noise": noise_gen.get_state()},
            "history": history,
            "config": OmegaConf.to_container(cfg, resolve=True),
        }, run_dir / "checkpoints" / "last.pt")

    def every_iteration(it: int, stats: dict[str, torch.Tensor]) -> None:
        last = it == t_cfg.iterations
        if it % t_cfg.log_every == 0 or last:
            values = {k: v.item() for k, v in stats.items()}
            logger.scalars(values, it)
            progress.update(it, {"d": values["loss/d"], "g": values["loss/g"]})
        if it % t_cfg.eval_every == 0 or last:
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
               start=0, iterations=t_cfg.iterations,
               d_steps=t_cfg.d_steps, g_steps=t_cfg.g_steps,
               every_iteration=every_iteration)
    wall = time.perf_counter() - t0
    progress.close()
    logger.close()

    final = history[-1]
    (run_dir / "metrics.json").write_text(json.dumps({"final": final, "history": history}, indent=1))
    (run_dir / "timing.json").write_text(json.dumps(
        {"wall_time_s": wall, "iterations_per_s": t_cfg.iterations / wall}, indent=1))
    log.info("final: %s (%.1f s)", ", ".join(f"{k} {v:.4g}" for k, v in final.items()), wall)
    return final["ks"]
