"""How good is best.pt? Each run's best and last generator, scored again on fresh draws.

    python experiments/best_vs_last.py RUNS_DIR [SEED]

best.pt is chosen by the run's own evaluations, so the score it was chosen for could be a lucky
draw (the best of many noisy measurements). This scores both checkpoints again on other draws (noise, and the
real samples compared against: for MNIST another sample of the training digits; as many as the
run's evaluations used, drawn from SEED, default 12345), for every run below RUNS_DIR (a
population's copies, a sweep's jobs), and prints a Markdown table.

A run that kept an average of G's weights (train.g_ema) is evaluated and sampled through it; the
last column scores the G that trained (last.pt's, not averaged) on the same draws, which says
whether the average helped this recipe. For a run without an average it is the same G as "last".
"""

import json
import sys
from pathlib import Path

import torch

from ganlab.config import main_metric
from ganlab.data import build_sampler
from ganlab.generate import load_generator
from ganlab.metrics import build_evaluator
from ganlab.models import sample_noise
from ganlab.summary import markdown_table, not_in_the_table, spread_table, unfinished


def fresh_score(run_dir: Path, which: str, seed: int, averaged: bool = True) -> tuple[str, float]:
    """The run's main metric for its `which` generator, on fresh noise and real samples."""
    cfg, G = load_generator(run_dir, which, averaged)
    gen = torch.Generator().manual_seed(seed)
    n = cfg.dataset.eval_samples
    evaluator = build_evaluator(cfg.dataset, build_sampler(cfg.dataset, gen).reference(n, gen),
                                sample_noise(cfg.model, cfg.dataset, n, gen))
    metric = main_metric(cfg)
    return metric, evaluator(G).scalars[metric]


def row(run_dir: Path, root: Path, seed: int) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metric, best_fresh = fresh_score(run_dir, "best", seed)
    _, last_fresh = fresh_score(run_dir, "last", seed)
    _, trained_fresh = fresh_score(run_dir, "last", seed, averaged=False)
    return {"run": str(run_dir.relative_to(root)) or ".", "best_at": metrics["best"]["iteration"],
            f"best {metric}": metrics["best"][metric], f"best {metric}, fresh": best_fresh,
            f"last {metric}": metrics["final"][metric], f"last {metric}, fresh": last_fresh,
            f"last {metric}, fresh, G not averaged": trained_fresh}


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__.strip())
        sys.exit()
    if len(sys.argv) not in (2, 3) or len(sys.argv) == 3 and not sys.argv[2].isdigit():
        sys.exit("usage: python experiments/best_vs_last.py RUNS_DIR [SEED]  (RUNS_DIR: a run, population or sweep)")
    if not Path(sys.argv[1]).is_dir():
        sys.exit(f"{sys.argv[1]} is not a directory; give a run's, a population's or a sweep's")
    root, seed = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) == 3 else 12345
    runs = sorted(path.parent.parent for path in root.rglob("checkpoints/best.pt"))
    if not runs:
        sys.exit(not_in_the_table(missing, table_shown=False) if (missing := unfinished(root)) else
                 f"no checkpoints/best.pt below {root}: train with train.keep_best=true (the default)")
    rows = [row(run_dir, root, seed) for run_dir in runs if (run_dir / "metrics.json").exists()]
    by_metric: dict[tuple, list[dict]] = {}  # a table each: a sweep over datasets has runs judged by KS and by FD
    for each in rows:
        by_metric.setdefault(tuple(each), []).append(each)
    for number, (columns, same) in enumerate(by_metric.items()):
        print(("\n" if number else "") + markdown_table(same, list(columns)))
        if len(same) > 1:
            print("\n" + spread_table(same, [key for key in columns if key not in ("run", "best_at")]))
    if missing := unfinished(root):
        print(not_in_the_table(missing, table_shown=bool(rows)))
