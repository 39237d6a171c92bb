"""Speed of ganlab's loop against a plain eager PyTorch reference, measured in one run.

    python experiments/benchmark.py                  # prints a table, writes benchmark.json
    python experiments/benchmark.py --quick          # fewer iterations (a smoke test)

Rows: the 1-D seed recipe (batch 1, iterations/s), the seed MNIST architecture at batch 16 and
128 (images/s, achieved GFLOP/s from a FLOP count of one real iteration, fraction of this
machine's fp32 GEMM peak measured in the same run), and start-up (process start to the end of a
1-iteration `python train.py`). Ratios compare ganlab with the reference in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from torch.utils.flop_counter import FlopCounterMode

from ganlab import loop
from ganlab.config import register_configs
from ganlab.models import build_models, sample_noise
from ganlab.run import build_gan

ROOT = Path(__file__).resolve().parents[1]


def gemm_peak(n: int = 1024, repeats: int = 20) -> float:
    """fp32 GFLOP/s of a square matrix product with the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def timed(step, iterations: int, warmup: int = 5) -> float:
    """Seconds per call of step(), after a warm-up."""
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(iterations):
        step()
    return (time.perf_counter() - t0) / iterations


def reference_step(G, D, opt_g, opt_d, real_fn, noise_fn):
    """The obvious eager GAN step: D on real + detached fake, then G through D."""
    def step():
        real, z = real_fn(), noise_fn()
        fake = G(z).detach()
        logits = D(torch.cat([real, fake])).flatten()
        labels = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))])
        d_loss = F.binary_cross_entropy_with_logits(logits, labels)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = F.binary_cross_entropy_with_logits(D(G(noise_fn())).flatten(), torch.ones(len(real)))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        return d_loss.item(), g_loss.item()
    return step


def ganlab_step(gan, real_fn, noise_fn):
    def step():
        loop.train(gan, real_fn, noise_fn, start=0, iterations=1)
    return step


def bench(overrides: list[str], batch: int, iterations: int) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"train.batch_size={batch}"])
    gen = torch.Generator().manual_seed(0)
    if cfg.dataset.name == "normal":
        real_fn = lambda: torch.randn(batch, cfg.dataset.sample_size, generator=gen) * 1.25 + 4  # noqa: E731
    else:
        real_fn = lambda: torch.rand(batch, 1, 28, 28, generator=gen) * 2 - 1  # noqa: E731
    noise_fn = lambda: sample_noise(cfg.model, cfg.dataset, batch, gen)  # noqa: E731

    gan = build_gan(cfg, iterations=10**9)
    G, D = build_models(cfg.model, cfg.dataset)
    opt = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
    ref = reference_step(G, D, opt[cfg.optimizer.g.name](G.parameters(), lr=cfg.optimizer.g.lr),
                         opt[cfg.optimizer.d.name](D.parameters(), lr=cfg.optimizer.d.lr), real_fn, noise_fn)
    ours = ganlab_step(gan, real_fn, noise_fn)
    with FlopCounterMode(display=False) as counter:
        ours()
    flops = counter.get_total_flops()
    t_ref, t_ours = timed(ref, iterations), timed(ours, iterations)
    return {"batch": batch, "s_per_iter_reference": t_ref, "s_per_iter_ganlab": t_ours,
            "speedup": t_ref / t_ours, "flops_per_iter": flops,
            "images_per_s_ganlab": batch / t_ours, "images_per_s_reference": batch / t_ref,
            "gflops_ganlab": flops / t_ours / 1e9}


def startup_seconds() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "train.py"), "train.iterations=1", "logger.tensorboard=false",
                    "train.progress=false", "hydra.run.dir=/tmp/ganlab-benchmark-startup"],
                   check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "benchmark.json"))
    args = parser.parse_args()
    register_configs(ROOT / "experiments")
    n = 5 if args.quick else 1
    peak = gemm_peak()
    results = {
        "threads": torch.get_num_threads(), "gemm_peak_gflops": peak,
        "1d_seed_batch1": bench(["experiment=seed_normal"], 1, 2000 // n),
        "mnist_seed_batch16": bench(["experiment=seed_mnist"], 16, 40 // n),
        "mnist_seed_batch128": bench(["experiment=seed_mnist"], 128, 10 // n if not args.quick else 2),
        "startup_s": startup_seconds(),
    }
    for key in ("mnist_seed_batch16", "mnist_seed_batch128"):
        results[key]["fraction_of_peak"] = results[key]["gflops_ganlab"] / peak
    print(f"threads {results['threads']}, fp32 GEMM peak {peak:.0f} GFLOP/s")
    print("| what | reference | ganlab | ganlab / reference |")
    print("|---|---|---|---|")
    r = results["1d_seed_batch1"]
    print(f"| 1-D seed recipe, iterations/s | {1 / r['s_per_iter_reference']:.0f} | "
          f"{1 / r['s_per_iter_ganlab']:.0f} | {r['speedup']:.2f} |")
    for key in ("mnist_seed_batch16", "mnist_seed_batch128"):
        r = results[key]
        print(f"| MNIST seed arch, batch {r['batch']}, images/s | {r['images_per_s_reference']:.0f} | "
              f"{r['images_per_s_ganlab']:.0f} ({r['gflops_ganlab']:.0f} GFLOP/s, "
              f"{100 * r['fraction_of_peak']:.0f}% of peak) | {r['speedup']:.2f} |")
    print(f"| start-up to the end of 1 iteration | | {results['startup_s']:.1f} s | |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
