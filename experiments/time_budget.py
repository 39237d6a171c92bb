"""Where a run's wall time goes: compilation, training steps, and each part of evaluating and logging.

    python experiments/time_budget.py experiment=seed_normal train.iterations=4000 train.compile=true train.population=32

Any train.py overrides. Runs train() in this process with timers around the per-copy work done
between iterations (Member.after) and its parts (the evaluator and its figure and distances,
TensorBoard's scalars, histograms and pictures), then prints seconds per part and per call.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import compose_config  # noqa: E402

from ganlab import member, metrics, run, tb_logger  # noqa: E402

seconds: dict[str, float] = defaultdict(float)
calls: dict[str, int] = defaultdict(int)


def timing(label: str, fn):
    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[label] += time.perf_counter() - t0
            calls[label] += 1
    return timed


def main(overrides: list[str]) -> None:
    member.Member.after = timing("between iterations (Member.after)", member.Member.after)
    metrics.NormalEvaluator.__call__ = timing("  evaluator", metrics.NormalEvaluator.__call__)
    metrics.MnistEvaluator.__call__ = timing("  evaluator", metrics.MnistEvaluator.__call__)
    metrics.histogram_figure = timing("    figure", metrics.histogram_figure)
    metrics.image_grid = timing("    image grid", metrics.image_grid)
    metrics.summarize = timing("    distances (KS, W1, mean, std)", metrics.summarize)
    for method in ("scalars", "histograms", "images"):
        setattr(tb_logger.TBLogger, method, timing(f"  TensorBoard {method}", getattr(tb_logger.TBLogger, method)))
    cfg = compose_config(overrides, tensorboard=True)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run.train(cfg, run_dir=Path(tmp))
        process = time.perf_counter() - t0
        t = json.loads((Path(tmp) / "timing.json").read_text())
    print(f"train(): {process:.1f} s; training wall time {t['wall_time_s']:.1f} s, of which the first "
          f"iteration (compilation, if any) {t['first_iteration_s']:.1f} s")
    for label in seconds:
        print(f"{label:40s} {seconds[label]:7.2f} s  {1e3 * seconds[label] / calls[label]:7.2f} ms a call x {calls[label]}")
    rest = t["wall_time_s"] - t["first_iteration_s"] - seconds["between iterations (Member.after)"]
    print(f"{'training steps (the rest)':40s} {rest:7.2f} s")


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__.strip())
        sys.exit()
    main(sys.argv[1:])
