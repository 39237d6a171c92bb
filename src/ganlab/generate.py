"""Sample from a finished run: `python generate.py run=RUN_DIR num_samples=N seed=S out=PATH`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import MISSING, OmegaConf

from ganlab import checkpoint
from ganlab.config import ConfigError
from ganlab.data.normal import NormalSampler
from ganlab.models import build_models, sample_noise
from ganlab.plots import histogram_figure, image_grid


@dataclass
class GenerateConfig:
    run: str = MISSING  # a run directory written by train.py
    num_samples: int = 64
    seed: int = 0
    out: str = "samples"  # writes OUT.npy and OUT.png


def load_generator(run_dir: Path):
    """The run's config and its generator (the averaged one where the run kept one)."""
    state = checkpoint.load(checkpoint.last_in(run_dir))
    cfg = OmegaConf.create(state["config"])
    G, _ = build_models(cfg.model, cfg.dataset)
    G.load_state_dict(state["G_ema"] or state["G"])
    return cfg, G.eval()


@torch.inference_mode()
def generate(args: GenerateConfig) -> tuple[Path, Path]:
    if args.num_samples <= 0:
        raise ConfigError(f"num_samples={args.num_samples} must be positive; ask for at least 1 sample")
    cfg, G = load_generator(Path(args.run))
    gen = torch.Generator().manual_seed(args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if cfg.dataset.name == "normal":
        vectors = -(-args.num_samples // cfg.dataset.sample_size)
        samples = G(sample_noise(cfg.model, cfg.dataset, vectors, gen)).flatten()[: args.num_samples]
        target = NormalSampler(cfg.dataset.mean, cfg.dataset.std, 1, gen).sample(args.num_samples)
        array = samples.numpy().astype(np.float32)
        picture = histogram_figure({"target": target, "generated": samples},
                                   title=f"{args.num_samples} samples from {args.run}")
    else:
        images = torch.cat([G(z) for z in sample_noise(cfg.model, cfg.dataset, args.num_samples, gen).split(500)])
        array = images.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)[:, 0].numpy()
        picture = image_grid(images, nrow=int(np.ceil(np.sqrt(args.num_samples))))
    np.save(out.with_suffix(".npy"), array)
    picture.save(out.with_suffix(".png"))
    return out.with_suffix(".npy"), out.with_suffix(".png")


def main(argv: list[str]) -> None:
    args = OmegaConf.merge(OmegaConf.structured(GenerateConfig), OmegaConf.from_cli(argv))
    OmegaConf.to_object(args)  # raises MissingMandatoryValue when run= is not given
    npy, png = generate(args)
    print(f"wrote {npy} and {png}")
