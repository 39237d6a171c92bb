"""Speed of ganlab's loop against a plain eager PyTorch reference, measured in one run.

    python experiments/benchmark.py                  # prints a table, writes benchmark.json
    python experiments/benchmark.py --quick          # fewer iterations (a smoke test)

Rows: the 1-D seed recipe (batch 1, iterations/s) and the seed MNIST architecture at batch 16
and 128 (images/s, GFLOP/s, fraction of this machine's fp32 GEMM peak measured in the same
run), each for the reference, ganlab's default path and ganlab with train.compile=true (the
same step functions train.py runs), and for the MNIST rows, on a CPU that computes bfloat16
natively, ganlab with train.amp=true against the bfloat16 GEMM peak; 32 seeds of the 1-D seed
recipe in one process (train.population=32) against one; the share of the default run's wall time spent on
evaluation, logging and checkpoints; start-up (from `python train.py` to its first iteration,
and to the end of a 1-iteration run). Ratios compare with the reference in the same run.

Rounds: this machine's speed drifts by 2x and more within minutes, so what a ratio compares is
timed side by side in alternating rounds (the reference, ganlab, ganlab compiled and the GEMM
peak; one seed, one compiled seed and 32 seeds), each ratio is taken within a round, and the
table gives the medians over the rounds; benchmark.json keeps every round.

FLOPs: "nominal" is the FLOP count of one iteration of ganlab's loop on the book's layers
(778 MFLOP an image for the seed MNIST pair), so nominal GFLOP/s = images/s x that count, the
measure the issue's ceiling uses; "executed" is the count of what ganlab's step computes,
which is less for the seed pair (models/layers.py computes the same function with fewer
multiply-adds). The reference runs in a fresh process with glibc's default
allocator, ganlab in this one with its own setting (memory.keep_freed_memory), as train.py has it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException
from torch.utils.flop_counter import FlopCounterMode

from ganlab import loop, provenance
from ganlab.config import ConfigError, check_group_choices, register_configs, validate
from ganlab.distributed import Placement, cpu_has_native_bfloat16
from ganlab.errors import one_line
from ganlab.files import check_writable, write_json
from ganlab.losses import build_loss
from ganlab.memory import keep_freed_memory
from ganlab.models import build_models, keras_init, sample_noise
from ganlab.models.conv_mnist import textbook_seed_pair
from ganlab.member import Member
from ganlab.run import build_step

ROOT = Path(__file__).resolve().parents[1]


def gemm_peak(n: int = 1024, repeats: int = 20, dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of a square matrix product (fp32 unless told) with the current thread count."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
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


def reference_optimizer(spec, net) -> torch.optim.Optimizer:
    """torch.optim's default implementation with the recipe's hyperparameters."""
    if spec.name == "adam":
        return torch.optim.Adam(net.parameters(), lr=spec.lr, betas=(spec.beta1, spec.beta2))
    return torch.optim.SGD(net.parameters(), lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov)


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


def compose_config(overrides: list[str], tensorboard: bool = False):
    """train.py's config for these overrides, checked as train.py checks it (a bad one: one line
    and exit 2, as train.py gives)."""
    register_configs(ROOT / "experiments")
    try:
        check_group_choices(overrides, ROOT / "conf")
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=[*overrides, "train.progress=false",
                                              f"logger.tensorboard={str(tensorboard).lower()}"])
        validate(cfg)
        return cfg
    except (HydraException, OmegaConfBaseException, ConfigError, yaml.YAMLError) as error:
        print(f"{Path(sys.argv[0]).name}: error: {one_line(error)}", file=sys.stderr)
        raise SystemExit(2) from None


def ganlab_step(overrides: list[str], run_dir: Path):
    """ganlab's own step function for a config (the one train.py runs), on a throwaway run dir."""
    cfg = compose_config(overrides)
    member = Member(cfg, run_dir, Placement(torch.device("cpu")))
    return cfg, member.gan, build_step([member])


def reference_models(cfg):
    """The models as written in the book: its own layers for the MNIST pair (ganlab's compute the
    same function with fewer operations), the same modules for the 1-D pair."""
    torch.manual_seed(0)
    if cfg.dataset.name == "normal":
        return build_models(cfg.model, cfg.dataset)
    G, D = textbook_seed_pair(cfg.model.z_dim)
    keras_init(G)
    keras_init(D)
    return G, D


def reference_inputs(cfg, batch: int):
    """real(), noise(): random batches of the right shapes (MNIST from 1,000 preloaded images)."""
    gen = torch.Generator().manual_seed(0)
    if cfg.dataset.name == "normal":
        real = lambda: torch.randn(batch, cfg.dataset.sample_size, generator=gen) * 1.25 + 4  # noqa: E731
    else:
        data = torch.rand(1000, 1, 28, 28, generator=gen) * 2 - 1
        real = lambda: data[torch.randint(0, 1000, (batch,), generator=gen)]  # noqa: E731
    return real, lambda: sample_noise(cfg.model, cfg.dataset, batch, gen)


_REFERENCE_STEPS: dict = {}  # in the reference's own process: its step for each row, built once


def reference_seconds(overrides: list[str], batch: int, iterations: int) -> float:
    """Seconds per iteration of the reference loop over `iterations` (0: build and warm up only).
    Runs in a process of its own (ReferenceProcess): glibc's default allocator, as the obvious
    program has it; the step is built once there and timed again every round."""
    key = (tuple(overrides), batch)
    if key not in _REFERENCE_STEPS:
        cfg = compose_config(overrides)
        G, D = reference_models(cfg)
        _REFERENCE_STEPS[key] = step = reference_step(
            G, D, reference_optimizer(cfg.optimizer.g, G), reference_optimizer(cfg.optimizer.d, D),
            *reference_inputs(cfg, batch))
        for _ in range(5):  # warm-up
            step()
    return timed(_REFERENCE_STEPS[key], iterations, warmup=0) if iterations else 0.0


class ReferenceProcess:
    """A fresh process, kept for a row, that times the reference when asked."""

    def __enter__(self):
        self.pool = multiprocessing.get_context("spawn").Pool(1)
        return lambda *args: self.pool.apply(reference_seconds, args)

    def __exit__(self, *exc):
        self.pool.terminate()


def in_fresh_process(fn, *args):
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def alternating(blocks: dict, rounds: int) -> list[dict]:
    """Each block's result in each round, in reversed order every other round (see Rounds above)."""
    results = []
    for r in range(rounds):
        names = list(blocks) if r % 2 == 0 else list(reversed(blocks))
        results.append({name: blocks[name]() for name in names})
    return results


def median(values) -> float:
    return statistics.median(list(values))


def nominal_flops(cfg, batch: int) -> int:
    """FLOPs of one iteration as ganlab's loop runs it (D's parameters frozen in the G step) on the
    book's layers: 778 MFLOP an image for the seed MNIST pair."""
    G, D = reference_models(cfg)
    gan = loop.GAN(G=G, D=D, opt_g=reference_optimizer(cfg.optimizer.g, G),
                   opt_d=reference_optimizer(cfg.optimizer.d, D), loss=build_loss(cfg.train.loss))
    with FlopCounterMode(display=False) as counter:
        loop.iteration(gan, *reference_inputs(cfg, batch))
    return counter.get_total_flops()


def bench(overrides: list[str], batch: int, iterations: int, rounds: int, run_dir: Path, amp: bool = False) -> dict:
    """Seconds per iteration of the reference, ganlab's default path and ganlab with
    train.compile, and the GEMM peak, timed in alternating rounds; every figure is the median over
    the rounds of that round's value (ratios: of the ratio within the round). `amp`: also ganlab
    with train.amp=true (bfloat16) and the bfloat16 GEMM peak, where this CPU has bfloat16."""
    overrides = [*overrides, f"train.batch_size={batch}", "dataset.eval_samples=16"]
    cfg, gan, plain = ganlab_step([*overrides, "train.compile=false"], run_dir / "plain")
    _, _, compiled = ganlab_step([*overrides, "train.compile=true"], run_dir / "compiled")
    with FlopCounterMode(display=False) as counter:
        plain()
    flops = {"nominal": nominal_flops(cfg, batch), "executed": counter.get_total_flops()}
    t0 = time.perf_counter()
    compiled()  # compiles: the first call
    compile_s = time.perf_counter() - t0
    steps = {"ganlab": plain, "ganlab_compiled": compiled}
    if amp:
        steps["ganlab_amp"] = ganlab_step([*overrides, "train.compile=false", "train.amp=true"], run_dir / "amp")[2]
    with ReferenceProcess() as reference:
        reference(overrides, batch, 0)  # builds and warms up the reference
        for step in (*steps.values(), *steps.values()):  # warm-up
            step()
        contenders = {"gemm_peak_gflops": gemm_peak,
                      "reference": lambda: reference(overrides, batch, iterations),
                      **{name: (lambda step=step: timed(step, iterations, warmup=0)) for name, step in steps.items()}}
        if amp:
            contenders["bf16_gemm_peak_gflops"] = lambda: gemm_peak(dtype=torch.bfloat16)
        per_round = alternating(contenders, rounds)
    row = {"batch": batch, "flops_per_iter": flops["nominal"], "executed_flops_per_iter": flops["executed"],
           "compile_s": compile_s, "rounds": per_round,
           "gemm_peak_gflops": median(r["gemm_peak_gflops"] for r in per_round)}
    if amp:
        row["bf16_gemm_peak_gflops"] = median(r["bf16_gemm_peak_gflops"] for r in per_round)
        row["amp_speedup_over_float32"] = median(r["ganlab"] / r["ganlab_amp"] for r in per_round)
    for name in ("reference", *steps):
        executed = flops["nominal" if name == "reference" else "executed"]
        peak = "bf16_gemm_peak_gflops" if name == "ganlab_amp" else "gemm_peak_gflops"
        seconds = median(r[name] for r in per_round)
        row[f"s_per_iter_{name}"] = seconds
        row[f"images_per_s_{name}"] = batch / seconds
        row[f"gflops_{name}"] = flops["nominal"] / seconds / 1e9
        row[f"executed_gflops_{name}"] = executed / seconds / 1e9
        row[f"speedup_{name}"] = median(r["reference"] / r[name] for r in per_round)
        row[f"fraction_of_peak_{name}"] = median(flops["nominal"] / r[name] / 1e9 / r[peak] for r in per_round)
        row[f"executed_fraction_of_peak_{name}"] = median(executed / r[name] / 1e9 / r[peak] for r in per_round)
    return row


def relu_ms() -> float:
    """Milliseconds of a ReLU over a 51 MB activation (MNIST batch 256 after D's first conv)."""
    x = torch.randn(256, 64, 28, 28)
    return 1e3 * timed(lambda: torch.relu(x), 10, warmup=2)


def allocator() -> dict:
    """relu_ms() with glibc's default allocator (a fresh process) and with ganlab's (this one)."""
    return {"glibc_default_ms": in_fresh_process(relu_ms), "kept_ms": relu_ms()}


def run_train(args: list[str], run_dir: Path) -> dict:
    """A whole `python train.py` run; its timing.json plus the process's wall time."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "train.py"), *args, "train.progress=false",
                    f"hydra.run.dir={run_dir}"], check=True, capture_output=True)
    timing = json.loads((run_dir / "timing.json").read_text())
    return timing | {"process_s": time.perf_counter() - t0}


def population(iterations: int, rounds: int, run_dir: Path) -> dict:
    """32 seeds of the 1-D seed recipe in one process against one seed (plain and compiled):
    whole train.py runs in alternating rounds; ratios are the medians of the rounds' ratios."""
    base = ["experiment=seed_normal", f"train.iterations={iterations}", "train.checkpoint_every=100000"]
    args = {"one": [*base, "train.compile=false"], "one_compiled": [*base, "train.compile=true"],
            "population_32": [*base, "train.compile=true", "train.population=32"]}
    keys = ("wall_time_s", "first_iteration_s", "process_s")
    dirs = (run_dir / str(k) for k in itertools.count())
    runs = alternating({name: lambda a=a: {k: v for k, v in run_train(a, next(dirs)).items() if k in keys}
                        for name, a in args.items()}, rounds)
    result = {name: {k: median(r[name][k] for r in runs) for k in keys} for name in args}
    return result | population_ratios(runs) | {"rounds": runs}


def population_ratios(runs: list[dict]) -> dict:
    """The population's time over one seed's, each the median of the rounds' ratios: training wall
    time, the same after the first iteration (which compiles), and the whole process as a user
    waits for it (start-up and exit included)."""
    ratios = {}
    for one in ("one", "one_compiled"):
        def ratio(time_of) -> float:
            return median(time_of(r["population_32"]) / time_of(r[one]) for r in runs)
        ratios[f"ratio_to_{one}"] = ratio(lambda run: run["wall_time_s"])
        ratios[f"ratio_to_{one}_after_first_iteration"] = ratio(lambda run: run["wall_time_s"] - run["first_iteration_s"])
        ratios[f"ratio_to_{one}_process"] = ratio(lambda run: run["process_s"])
    return ratios


def eval_cost(run_dir: Path) -> dict:
    """Share of the default run's training wall time spent evaluating, logging and checkpointing."""
    timing = run_train([], run_dir)
    return {k: timing[k] for k in ("wall_time_s", "eval_log_s", "checkpoint_s", "process_s")} | {
        "fraction": (timing["eval_log_s"] + timing["checkpoint_s"]) / timing["wall_time_s"]}


def startup_seconds(run_dir: Path) -> dict:
    """A 1-iteration default run: from `python train.py` to its first iteration (timing.json's
    startup_s), and to the end of the process."""
    timing = run_train(["train.iterations=1", "logger.tensorboard=false"], run_dir)
    return {"to_first_iteration_s": timing["startup_s"], "process_s": timing["process_s"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer iterations: a smoke test")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "benchmark.json"))
    args = parser.parse_args()
    out = Path(args.out)
    try:
        check_writable(out)
    except OSError as error:
        parser.error(f"cannot write {out} ({error.strerror or error}); choose another file with --out PATH")
    keep_freed_memory()  # as train.py runs ganlab; the reference runs in fresh processes
    n, rounds = (10, 2) if args.quick else (1, 5)  # quick: a tenth of the iterations, 2 rounds
    amp = bool(cpu_has_native_bfloat16())  # train.amp=true refuses a CPU without it
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        peak = gemm_peak()
        results = {
            "environment": provenance.environment(torch.device("cpu")),  # what these numbers were measured on
            "threads": torch.get_num_threads(), "gemm_peak_gflops": peak,
            "1d_seed_batch1": bench(["experiment=seed_normal"], 1, 400 // n, rounds, tmp / "1d"),
            "mnist_seed_batch16": bench(["experiment=seed_mnist"], 16, 8 // n or 1, rounds, tmp / "m16", amp),
            "mnist_seed_batch128": bench(["experiment=seed_mnist"], 128, 2 // n or 1, rounds, tmp / "m128", amp),
            "population_iterations": 4000 // n,
            "population_1d_seed": population(4000 // n, 2 if args.quick else 3, tmp / "population"),
            "eval_log_cost_default_run": eval_cost(tmp / "default"),
            "startup": startup_seconds(tmp / "startup"),
            "relu_51mb": allocator(),
            "gemm_peak_gflops_after": gemm_peak(),
        }
    print(report(results))
    try:
        write_json(out, results)
    except OSError as error:  # (the disk filled while measuring, say): the table above is the result
        sys.exit(f"benchmark.py: error: could not write {out} ({error.strerror or error}); the table above has "
                 "the figures")


def report(results: dict) -> str:
    peak = results["gemm_peak_gflops"]
    rounds = len(results["1d_seed_batch1"]["rounds"])
    lines = [f"threads {results['threads']}; fp32 GEMM peak {peak:.0f} GFLOP/s at the start, "
             f"{results['gemm_peak_gflops_after']:.0f} at the end. Each row: medians over {rounds} "
             "alternating rounds of the reference, ganlab, ganlab compiled and the GEMM peak (each "
             "ratio and % taken within a round); the peaks' medians for the MNIST rows were "
             f"{results['mnist_seed_batch16']['gemm_peak_gflops']:.0f} and "
             f"{results['mnist_seed_batch128']['gemm_peak_gflops']:.0f}", "",
             "| what | reference | ganlab | ganlab, train.compile=true |", "|---|---|---|---|"]
    r = results["1d_seed_batch1"]
    lines.append("| 1-D seed recipe, iterations/s | " + " | ".join(
        f"{1 / r[f's_per_iter_{k}']:.0f}" + ("" if k == "reference" else f" ({r[f'speedup_{k}']:.2f}x)")
        for k in ("reference", "ganlab", "ganlab_compiled")) + " |")
    for key in ("mnist_seed_batch16", "mnist_seed_batch128"):
        r = results[key]
        lines.append(f"| MNIST seed arch, batch {r['batch']}, images/s (% of GEMM peak: nominal, executed) | "
                     + " | ".join(
            f"{r[f'images_per_s_{k}']:.0f} ({100 * r[f'fraction_of_peak_{k}']:.0f}%"
            + (")" if k == "reference" else
               f", {100 * r[f'executed_fraction_of_peak_{k}']:.0f}%; {r[f'speedup_{k}']:.2f}x)")
            for k in ("reference", "ganlab", "ganlab_compiled")) + " |")
    mnist = (results["mnist_seed_batch16"], results["mnist_seed_batch128"])
    if "ganlab_amp" in mnist[0]["rounds"][0]:
        amp = [f"batch {r['batch']} {r['images_per_s_ganlab_amp']:.0f} images/s "
               f"({r['amp_speedup_over_float32']:.2f}x ganlab's float32, {r['speedup_ganlab_amp']:.2f}x the "
               f"reference; {100 * r['fraction_of_peak_ganlab_amp']:.0f}% nominal, "
               f"{100 * r['executed_fraction_of_peak_ganlab_amp']:.0f}% executed of the bfloat16 GEMM peak, "
               f"median {r['bf16_gemm_peak_gflops']:.0f} GFLOP/s)" for r in mnist]
        lines += ["", "bfloat16 autocast (`train.amp=true`; this CPU computes bfloat16 natively), the same rounds: "
                  + "; ".join(amp)]
    compile_s = ", ".join(f"{results[k]['compile_s']:.0f} s" for k in ("1d_seed_batch1", "mnist_seed_batch16",
                                                                      "mnist_seed_batch128"))
    p = results["population_1d_seed"]
    e = results["eval_log_cost_default_run"]
    m = results["mnist_seed_batch16"]
    lines += ["", f"MFLOP an image, MNIST seed arch: nominal (the book's layers) {m['flops_per_iter'] / m['batch'] / 1e6:.0f}, "
              f"executed by ganlab {m['executed_flops_per_iter'] / m['batch'] / 1e6:.0f}",
              f"first compiled call (compilation): {compile_s}",
              "population (seed recipe, {} its, medians of {} alternating rounds of whole runs): training wall time "
              "one seed {:.1f} s, one compiled {:.1f} s, 32 seeds compiled {:.1f} s; 32 seeds = {:.2f}x one, {:.2f}x "
              "one compiled (after the first iteration, which compiles: {:.2f}x, {:.2f}x; whole processes, start-up "
              "and exit included: {:.2f}x, {:.2f}x)".format(
                  results["population_iterations"], len(p["rounds"]), p["one"]["wall_time_s"],
                  p["one_compiled"]["wall_time_s"], p["population_32"]["wall_time_s"], p["ratio_to_one"],
                  p["ratio_to_one_compiled"], p["ratio_to_one_after_first_iteration"],
                  p["ratio_to_one_compiled_after_first_iteration"], p["ratio_to_one_process"],
                  p["ratio_to_one_compiled_process"]),
              f"default run: evaluation + logging + checkpoints {e['eval_log_s'] + e['checkpoint_s']:.2f} s of "
              f"{e['wall_time_s']:.1f} s training = {100 * e['fraction']:.1f}%",
              f"start-up: {results['startup']['to_first_iteration_s']:.1f} s from `python train.py` to the first "
              f"iteration ({results['startup']['process_s']:.1f} s to the end of a 1-iteration run)",
              "ReLU over 51 MB: {:.1f} ms with glibc's default allocator, {:.1f} ms with freed memory kept".format(
                  results["relu_51mb"]["glibc_default_ms"], results["relu_51mb"]["kept_ms"])]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
