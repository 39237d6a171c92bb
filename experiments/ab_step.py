"""Is a change to the fused iteration faster? An A/B of src/ganlab/functional.py at a git revision
(A) against the working tree's (B), both in this one process, timed in interleaved rounds.

    python experiments/ab_step.py --base HEAD experiment=seed_normal train.population=32 train.compile=true
    python experiments/ab_step.py --base HEAD~2 --iterations 500 experiment=seed_normal train.compile=true

On this 2-core machine the same command's speed varies by 2-3x from one process to the next,
more than most changes are worth; two versions timed in one process, in alternating blocks,
agree with themselves to a few percent. Prints each version's ms an iteration per round, the
medians and the median of B/A over the rounds. The revision's functional.py must have the
working tree's interface (FusedIteration, draw).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import ROOT, compose_config  # noqa: E402

from ganlab import functional  # noqa: E402
from ganlab.distributed import Placement  # noqa: E402
from ganlab.memory import keep_freed_memory  # noqa: E402
from ganlab.member import build_members  # noqa: E402
from ganlab.streams import Together  # noqa: E402


def functional_at(revision: str, directory: Path):
    """functional.py as it is at `revision`, imported as its own module."""
    shown = subprocess.run(["git", "show", f"{revision}:src/ganlab/functional.py"], cwd=ROOT,
                           capture_output=True, text=True)
    if shown.returncode:
        sys.exit(f"ab_step.py: no src/ganlab/functional.py at --base {revision} ({shown.stderr.strip()}); "
                 "give a git revision of this repository, e.g. --base HEAD~1")
    source = shown.stdout
    path = directory / "functional_base.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("functional_base", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["functional_base"] = module  # torch.compile looks the module up by name
    spec.loader.exec_module(module)
    return module


def step_of(module, cfg, run_dir: Path):
    """One iteration of cfg's GAN (or population) with `module`'s FusedIteration, as build_step makes it."""
    members = build_members(cfg, run_dir, Placement(torch.device("cpu")))
    fused = module.FusedIteration([m.gan for m in members], compile=cfg.train.compile)
    real, noise = Together([m.real for m in members]), Together([m.noise for m in members])
    t = cfg.train
    if len(members) == 1:
        return lambda: fused(*(x[0] for x in module.draw(real, noise, t.d_steps, t.g_steps)))
    return lambda: fused(*module.draw(real, noise, t.d_steps, t.g_steps))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="git revision whose functional.py is A")
    parser.add_argument("--iterations", type=int, default=150, help="iterations a round")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    keep_freed_memory()
    cfg = compose_config([*args.overrides, "dataset.eval_samples=16"])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        steps = {"A": step_of(functional_at(args.base, tmp), cfg, tmp / "A"),
                 "B": step_of(functional, cfg, tmp / "B")}
        for step in steps.values():  # compile and warm up
            for _ in range(3):
                step()
        ms = {"A": [], "B": []}
        for r in range(args.rounds):
            for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                t0 = time.perf_counter()
                for _ in range(args.iterations):
                    steps[name]()
                ms[name].append(1e3 * (time.perf_counter() - t0) / args.iterations)
    for name, label in (("A", args.base), ("B", "working tree")):
        print(f"{name} ({label}): median {statistics.median(ms[name]):.3f} ms an iteration; rounds "
              + " ".join(f"{x:.2f}" for x in ms[name]))
    print(f"B/A: {statistics.median(b / a for a, b in zip(ms['A'], ms['B'])):.3f} (median over rounds)")


if __name__ == "__main__":
    main()
