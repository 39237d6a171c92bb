"""Is one setting faster than another? ganlab's training step (the one train.py runs) for a config
(A) and for the same config with a few more overrides (B), both in this one process, timed in
interleaved rounds.

    python experiments/ab_config.py dataset=mnist --b train.amp=true
    python experiments/ab_config.py experiment=seed_mnist train.batch_size=128 --b train.amp=true --iterations 4

Where ab_step.py compares two revisions of the code, this compares two settings of the same code.
Prints each side's ms an iteration and items (images or 1-D samples) a second per round, the
medians, and the median of A/B (B's speed-up) over the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import alternating, ganlab_step, timed  # noqa: E402

from ganlab.memory import keep_freed_memory  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--b", action="append", required=True, metavar="OVERRIDE",
                        help="an override B adds to A's (repeat --b for more)")
    parser.add_argument("--iterations", type=int, default=50, help="iterations a round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("overrides", nargs="*", help="A's overrides (train.py's)")
    args = parser.parse_args()
    keep_freed_memory()  # as train.py runs
    a, b = [*args.overrides, "dataset.eval_samples=16"], [*args.overrides, "dataset.eval_samples=16", *args.b]
    with tempfile.TemporaryDirectory() as tmp:
        built = {"A": ganlab_step(a, Path(tmp) / "A"), "B": ganlab_step(b, Path(tmp) / "B")}
        steps = {name: step for name, (_, _, step) in built.items()}
        for step in (*steps.values(), *steps.values()):  # warm-up (and compilation, if asked for)
            step()
        rounds = alternating({name: (lambda step=step: timed(step, args.iterations, warmup=0))
                              for name, step in steps.items()}, args.rounds)
    for name, label in (("A", " ".join(args.overrides) or "defaults"), ("B", f"A + {' '.join(args.b)}")):
        seconds = [r[name] for r in rounds]
        batch = built[name][0].train.batch_size
        print(f"{name} ({label}): median {1e3 * statistics.median(seconds):.2f} ms an iteration, "
              f"{batch / statistics.median(seconds):.0f} items/s; rounds (ms) "
              + " ".join(f"{1e3 * s:.2f}" for s in seconds))
    print(f"A/B (B's speed-up): {statistics.median(r['A'] / r['B'] for r in rounds):.3f} (median over rounds)")


if __name__ == "__main__":
    main()
