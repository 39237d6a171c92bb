"""Would the averaged G score better with BatchNorm statistics of its own?

    python experiments/recalibrate_batchnorm.py RUN_DIR

An average of G's weights (train.g_ema) takes its BatchNorm running means and variances from the
G that trained, whose weights differ. This scores last.pt's G and its average on the run's own
evaluation draws (the numbers its last evaluation logged) as saved, and again after recomputing
their statistics for their own weights: reset, then a cumulative average over the same number of
noise vectors in training mode (another seed). Prints one line a generator. A run without
BatchNorm (the 1-D GAN) has nothing to recompute.
"""

import copy
import sys
from pathlib import Path

import torch
from torch import nn

from ganlab.config import main_metric
from ganlab.data import build_sampler
from ganlab.generate import load_generator
from ganlab.metrics import build_evaluator
from ganlab.models import sample_noise
from ganlab.streams import stream


def recalibrated(G: nn.Module, noise: torch.Tensor) -> nn.Module:
    G = copy.deepcopy(G)
    norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches below
    with torch.inference_mode():
        G.train()
        for batch in noise.split(500):
            G(batch)
    return G.eval()


def main(run_dir: Path) -> None:
    cfg, _ = load_generator(run_dir)
    if cfg.dataset.name != "mnist":
        sys.exit(f"{run_dir}: its G has no BatchNorm (dataset={cfg.dataset.name}); nothing to recompute")
    eval_gen, n = stream(cfg.seed, "eval"), cfg.dataset.eval_samples  # the run's own evaluation draws
    evaluator = build_evaluator(cfg.dataset, build_sampler(cfg.dataset, torch.Generator()).reference(n, eval_gen),
                                sample_noise(cfg.model, cfg.dataset, n, eval_gen))
    calibration = sample_noise(cfg.model, cfg.dataset, n, torch.Generator().manual_seed(999))
    metric = main_metric(cfg)
    for averaged, name in ((False, "G that trained"), (True, "averaged G")):
        _, G = load_generator(run_dir, averaged=averaged)
        saved, own = (evaluator(g).scalars[metric] for g in (G, recalibrated(G, calibration)))
        print(f"{name}: {metric} {saved:.4g} with the statistics as saved, {own:.4g} recomputed")


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__.strip())
        sys.exit()
    if len(sys.argv) != 2 or not (Path(sys.argv[1]) / "checkpoints").is_dir():
        sys.exit("usage: python experiments/recalibrate_batchnorm.py RUN_DIR  (an MNIST run)")
    main(Path(sys.argv[1]))
