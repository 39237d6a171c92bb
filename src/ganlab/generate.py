"""Sample from a finished run: `python generate.py run=RUN_DIR num_samples=N seed=S out=PATH`."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, ValidationError

from ganlab import checkpoint
from ganlab.config import ConfigError, check_seed
from ganlab.errors import out_of_memory
from ganlab.files import written_whole
from ganlab.memory import within_available_memory
from ganlab.data.normal import NormalSampler
from ganlab.models import build_models, sample_noise
from ganlab.plots import histogram_figure, image_grid, line_figure


@dataclass
class GenerateConfig:
    run: str = MISSING  # a run directory written by train.py
    num_samples: int = 64
    seed: int = 0
    out: str = "samples"  # writes OUT.npy and OUT.png (OUT a folder, or ending in /: OUT/samples.npy and .png)
    # last (the end of training) | best (the best evaluation: train.keep_best) | iter_N (a numbered
    # checkpoint train.keep_checkpoints kept: G as it was at iteration N)
    checkpoint: str = "last"
    # > 1: walk through G's noise in this many steps. Digits: num_samples walks, each from one noise
    # vector to another (a row a walk). 1-D: G's output along its noise's range [0, 1), against the
    # target's quantile function, the monotone map to it: the map G learned.
    walk: int = 0


def load_generator(run_dir: str | Path, which: str = "last", averaged: bool = True):
    """The run's config and its generator (the averaged one where the run kept one, unless
    averaged=False), as it was at the end of training (last), at its best evaluation (best) or at
    iteration N (iter_N, a numbered checkpoint); on the CPU, in eval mode. Also for a user's own
    code (README, "Sampling from a run")."""
    numbered = re.fullmatch(r"iter_(\d+)", which)
    if which not in ("last", "best") and not numbered:
        raise ConfigError(f"checkpoint={which} is not one generate.py reads; use checkpoint=last, best or iter_N")
    path = checkpoint.last_in(run_dir, key="run")  # one line if run_dir is no run
    if which == "best":
        path = path.with_name(checkpoint.BEST)
        if not path.is_file():
            raise ConfigError(f"{path}: no best checkpoint (the run has not evaluated yet, or was trained with "
                              "train.keep_best=false or a ganlab older than it); use checkpoint=last")
    if numbered:
        path = path.with_name(checkpoint.numbered_name(int(numbered[1])))
        if not path.is_file():
            kept = ", ".join(f"iter_{int(p.stem[5:])}" for p in sorted(path.parent.glob("iter_*.pt")))
            raise ConfigError(f"{path}: no checkpoint of iteration {int(numbered[1])} (kept: {kept or 'none'}; "
                              "train.keep_checkpoints decides how many); use "
                              + ("one of those, or " if kept else "") + "checkpoint=last")
    state = checkpoint.load(path)
    cfg = OmegaConf.create(state["config"])
    G, _ = build_models(cfg.model, cfg.dataset)
    G.load_state_dict(state["G_ema"] if averaged and state["G_ema"] else state["G"])
    return cfg, G.eval()


def walks(start: torch.Tensor, end: torch.Tensor, steps: int, spherical: bool) -> torch.Tensor:
    """(walks, steps, z) noise vectors from each `start` row to its `end` row. Normal noise walks
    along the great circle (slerp): a straight line's midpoints are shorter than the vectors G
    was trained on. Uniform noise walks straight, staying inside its cube."""
    t = torch.linspace(0, 1, steps)[None, :, None]
    a, b = start[:, None], end[:, None]
    straight = a + t * (b - a)
    if not spherical:
        return straight
    angle = torch.arccos(torch.nn.functional.cosine_similarity(a, b, dim=-1)[..., None].clamp(-1, 1))
    sin = torch.sin(angle).clamp_min(1e-6)
    arc = (torch.sin((1 - t) * angle) * a + torch.sin(t * angle) * b) / sin
    return torch.where(angle > 1e-3, arc, straight)  # (nearly) parallel vectors: the arc is the line


# The picture shows at most this many digits (a 32 x 32 grid): the .npy holds them all, and a grid
# of 50,000 (say, for a Frechet distance computed elsewhere) took seconds to draw and tens of MB.
PICTURE_DIGITS = 1024


def normal_samples(cfg, G, args: GenerateConfig, gen: torch.Generator):
    """num_samples values, and their histogram against the target's."""
    vectors = -(-args.num_samples // cfg.dataset.sample_size)
    noise = sample_noise(cfg.model, cfg.dataset, vectors, gen)
    samples = torch.cat([G(chunk).flatten() for chunk in noise.split(10_000)])[: args.num_samples]
    target = NormalSampler(cfg.dataset.mean, cfg.dataset.std, 1, gen).sample(args.num_samples)
    picture = histogram_figure({"target": target, "generated": samples},
                               title=f"{args.num_samples} samples from {args.run}")
    return samples.numpy().astype(np.float32), picture, args.num_samples


def normal_map(cfg, G, args: GenerateConfig, gen: torch.Generator):
    """G(u) for `walk` noise values u evenly over [0, 1), against the target's quantile function:
    it maps uniform noise onto the target, and so does its mirror image (drawn in the direction G
    runs: a G may learn either)."""
    u = (torch.arange(args.walk, dtype=torch.float32) + 0.5) / args.walk
    x = torch.cat([G(chunk[None]).flatten() for chunk in u.split(1_000_000)])  # (G's hidden layers: 50x u)
    down = bool(torch.corrcoef(torch.stack([u, x]))[0, 1] < 0)
    level = 1 - u if down else u
    quantile = cfg.dataset.mean + cfg.dataset.std * math.sqrt(2) * torch.special.erfinv(2 * level - 1)
    picture = line_figure({"G(u)": (u.numpy(), x.numpy()),
                           f"target quantile{', mirrored' if down else ''}": (u.numpy(), quantile.numpy())},
                          title=f"G along its noise u in [0, 1), {args.run}")
    return torch.stack([u, x]).numpy(), picture, args.num_samples


def digit_samples(cfg, G, args: GenerateConfig, gen: torch.Generator):
    """num_samples digits, a square grid of the first PICTURE_DIGITS, and how many that is."""
    images = torch.cat([G(z) for z in sample_noise(cfg.model, cfg.dataset, args.num_samples, gen).split(500)])
    shown = images[:PICTURE_DIGITS]
    return to_uint8(images), image_grid(shown, nrow=int(np.ceil(np.sqrt(len(shown))))), len(shown)


def digit_walks(cfg, G, args: GenerateConfig, gen: torch.Generator):
    """num_samples walks of `walk` digits, each from one noise vector to another; a row a walk
    (as many rows as PICTURE_DIGITS allows, at least one)."""
    start, end = (sample_noise(cfg.model, cfg.dataset, args.num_samples, gen) for _ in range(2))
    z = walks(start, end, args.walk, spherical=cfg.model.noise == "normal")
    images = torch.cat([G(chunk) for chunk in z.flatten(0, 1).split(500)])
    rows = min(args.num_samples, max(1, PICTURE_DIGITS // args.walk))
    return (to_uint8(images).reshape(args.num_samples, args.walk, 28, 28),
            image_grid(images[: rows * args.walk], nrow=args.walk), rows)


@torch.inference_mode()
def generate(args: GenerateConfig) -> tuple[Path, Path, str]:
    """Writes OUT.npy and OUT.png; returns their paths and what the picture leaves out, if anything."""
    if args.num_samples <= 0:
        raise ConfigError(f"num_samples={args.num_samples} must be positive; ask for at least 1 sample")
    if args.walk == 1 or args.walk < 0:
        raise ConfigError(f"walk={args.walk} is not a number of steps; use walk=2 or more "
                          "(walk=0: independent samples)")
    check_seed(args.seed)
    cfg, G = load_generator(Path(args.run), args.checkpoint)
    draw = {("normal", False): normal_samples, ("normal", True): normal_map,
            ("mnist", False): digit_samples, ("mnist", True): digit_walks}[cfg.dataset.name, args.walk > 0]
    try:  # (the cap: else, where the kernel overcommits memory, too many samples filled it until killed)
        with within_available_memory():
            array, picture, shown = draw(cfg, G, args, torch.Generator().manual_seed(args.seed))
    except (MemoryError, RuntimeError) as error:
        if not (too_big := out_of_memory(error, "cpu")):
            raise
        raise ConfigError(f"{too_big}; ask for fewer samples (num_samples=, walk=)") from None
    out = Path(args.out).expanduser()  # (zsh passes out=~/x on as it is; run= is expanded the same way)
    if out.is_dir() or args.out.endswith(("/", os.sep)):  # out=DIR or out=NEW_DIR/: DIR/samples.npy and .png,
        out = out / GenerateConfig.out                     # not DIR.npy beside it
    if out.suffix in (".npy", ".png"):  # out=x.npy: x.npy and x.png; out=run1.best: run1.best.npy, not run1.npy
        out = out.with_suffix("")
    npy, png = out.with_name(out.name + ".npy"), out.with_name(out.name + ".png")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with written_whole(npy) as f:
            np.save(f, array)
        with written_whole(png) as f:
            picture.save(f, format="PNG")
    except OSError as error:
        raise ConfigError(f"cannot write {out} ({error.strerror}); choose another out=PATH") from None
    note = f" (the picture: the first {shown} of the {args.num_samples} {'walks' if args.walk else 'digits'})"
    return npy, png, note if shown < args.num_samples else ""


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """G's digits in [-1, 1], (N, 1, 28, 28) -> uint8 pixels, (N, 28, 28)."""
    return images.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)[:, 0].numpy()


USAGE = """usage: python generate.py run=RUN_DIR [num_samples=64] [seed=0] [out=samples] [checkpoint=last|best|iter_N] [walk=0]

Samples from a run written by train.py (its averaged G where it kept one), at the end of its
training (checkpoint=last), at its best evaluation (checkpoint=best) or at iteration N
(checkpoint=iter_N, one of the numbered checkpoints the run kept), and writes OUT.npy
(MNIST: uint8 N x 28 x 28; normal: float32 N values) and OUT.png (a grid of the first 1,024
digits, or the samples' histogram against the target); OUT a folder, or ending in /: OUT/samples.npy
and .png. Same run, same seed, same samples.

walk=STEPS: a walk through G's noise in STEPS steps instead. Digits: num_samples walks, each from
one noise vector to another; OUT.npy is num_samples x STEPS x 28 x 28, OUT.png a row a walk
(the first walks, up to 1,024 digits, at least one walk).
1-D: G's output as its noise u goes over [0, 1); OUT.npy is 2 x STEPS (u, G(u)), OUT.png the
curve against the target's quantile function (the increasing map from u to the target)."""


def parse(argv: list[str]) -> GenerateConfig:
    """key=value arguments into a GenerateConfig; a mistake is a ConfigError naming the key."""
    try:
        args = OmegaConf.merge(OmegaConf.structured(GenerateConfig), OmegaConf.from_cli(argv))
        return OmegaConf.to_object(args)
    except MissingMandatoryValue:
        raise ConfigError("run= is missing; give the directory of a run written by train.py, "
                          "e.g. run=outputs/DATE/TIME") from None
    except ConfigKeyError as error:
        raise ConfigError(f"{error.key!r} is not an option of generate.py; the options are "
                          f"run, num_samples, seed, out, checkpoint, walk (python generate.py --help)") from None
    except ValidationError as error:
        given = (f"{error.full_key}= is empty" if error.value is None  # (OmegaConf reads `run=` as None)
                 else f"{error.full_key}={error.value!r} is not a valid {error.full_key}")
        raise ConfigError(f"{given}; num_samples, seed and walk take integers, run and out paths, "
                          "checkpoint last, best or iter_N") from None


def main(argv: list[str]) -> None:
    if {"-h", "--help"} & set(argv):
        print(USAGE)
        return
    npy, png, note = generate(parse(argv))
    print(f"wrote {npy} and {png}{note}")
