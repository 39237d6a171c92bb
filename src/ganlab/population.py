"""A population (train.population=K): K copies of one GAN with seeds seed .. seed+K-1, each a
complete run in RUN_DIR/seed_N/, and what belongs to the whole: how far the copies spread.

A GAN's result varies from seed to seed more than most settings change it, so the spread is
the point: the copies' mean and standard deviation at every evaluation go to a TensorBoard run
of their own, RUN_DIR/population (each metric's mean drawn among the copies' curves, and mean
± one standard deviation as a band in the Custom Scalars dashboard), and to RUN_DIR/metrics.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, open_dict

from ganlab import checkpoint
from ganlab.config import ConfigError, main_metric
from ganlab.overrides import as_typed
from ganlab.files import write_json, write_text
from ganlab.summary import markdown_table, mean_and_std, spread_table
from ganlab.tb_logger import TBLogger

if TYPE_CHECKING:
    from ganlab.member import Member


def member_config(cfg: DictConfig, seed: int) -> DictConfig:
    """A copy's own config: the run's, with its seed, as a single run would have it."""
    member = cfg.copy()
    with open_dict(member):
        member.seed, member.train.population = seed, 1
    return member


def check_same_shape(run_dir: Path, population: int, seed: int) -> None:
    """resume= of a population needs its train.population and seed (its copies are seed_SEED to
    seed_SEED+K-1), and of a single run none."""
    copies = checkpoint.copies_in(run_dir)
    if population == 1 and copies and not (run_dir / "checkpoints").is_dir():
        first = copies[0]  # seed_N, which trained with seed=N
        raise ConfigError(f"{run_dir} holds a population of {len(copies)} copies ({first.name} to "
                          f"{copies[-1].name}); resume it with the command that started it "
                          f"(train.population={len(copies)} included), or one copy with "
                          f"{as_typed('resume', str(first))} seed={first.name.removeprefix('seed_')}")
    if population > 1 and not copies:
        raise ConfigError(f"{run_dir} holds a single run, not a population; resume it without train.population")
    seeds = [int(copy.name.removeprefix("seed_")) for copy in copies]
    if population > 1 and seeds != list(range(seed, seed + population)):
        # Fewer would train some copies on and leave the rest behind; more would find no checkpoint.
        raise ConfigError(f"{run_dir} holds a population of {len(seeds)} copies (seed_{seeds[0]} to "
                          f"seed_{seeds[-1]}), and this command gives train.population={population} seed={seed} "
                          f"(seed_{seed} to seed_{seed + population - 1}); resume it with "
                          f"train.population={len(seeds)} seed={seeds[0]} (more seeds: a new run from "
                          f"seed={seeds[-1] + 1})")


def failed_before(cfg: DictConfig, run_dir: Path) -> list[int]:
    """The seeds of a resumed population's copies that failed in an earlier process: left out,
    they stay as they ended (their last good checkpoint is behind the others')."""
    if not cfg.resume or cfg.train.population == 1:
        return []
    return [seed for seed in range(cfg.seed, cfg.seed + cfg.train.population)
            if (Path(run_dir) / f"seed_{seed}" / checkpoint.FAILURE).exists()]


def metrics_of(entry: dict) -> dict:
    """An evaluation's metrics, without the iteration it was made at."""
    return {k: v for k, v in entry.items() if k != "iteration"}


class Spread:
    """The copies' evaluations, gathered: logged as they come, written out at the end."""

    def __init__(self, run_dir: Path, members: list[Member], start: int, left_out: list[int],
                 enabled: bool = True):
        self.run_dir, self.members = run_dir, members
        # Copies that failed in an earlier process: their evaluations up to their last checkpoint (none
        # where they diverged before their first)
        lasts = [run_dir / f"seed_{seed}" / "checkpoints" / checkpoint.LAST for seed in left_out]
        self.left_out = [checkpoint.load(last)["history"] if last.is_file() else [] for last in lasts]
        if enabled:
            (run_dir / "population").mkdir(parents=True, exist_ok=True)
        self.logger = TBLogger(run_dir / "population", enabled=enabled, purge_step=start + 1 if start else None)
        self.layout_written = False

    def history(self) -> list[dict]:
        """At every evaluation: mean and standard deviation of each metric over the copies that
        evaluated then (a copy that failed counts until it failed), and how many they were."""
        rows: dict[int, list[dict]] = {}
        for history in [m.history for m in self.members] + self.left_out:
            for entry in history:
                rows.setdefault(entry["iteration"], []).append(metrics_of(entry))
        return [{"iteration": it, "copies": len(rows[it]), **mean_and_std(rows[it])} for it in sorted(rows)]

    def log(self, it: int) -> None:
        """After the copies' evaluation at `it`: history()'s last entry, to TensorBoard."""
        rows = [metrics_of(m.history[-1]) for m in self.members if m.history and m.history[-1]["iteration"] == it]
        if not rows:
            return
        values, keys = mean_and_std(rows), list(rows[0])
        if not self.layout_written:
            self.logger.margin_charts("population: mean ± std over the copies",
                                      {k: (f"eval/{k}", f"eval_band/{k}_lower", f"eval_band/{k}_upper") for k in keys})
            self.layout_written = True
        self.logger.scalars({"eval/copies": len(rows), **{f"eval/{k}": values[k] for k in keys}}, it)
        self.logger.scalars({f"eval_band/{k}_{side}": values[k] + sign * values[f"{k}_std"]
                             for k in keys for side, sign in (("lower", -1), ("upper", 1))}, it)
        self.logger.flush()

    def finish(self, wall: float | None, first_iteration_s: float | None, startup_s: float | None) -> dict:
        """metrics.json (the final mean and standard deviation of every metric over the copies
        that finished, so a sweep of populations reads like a sweep of runs, and the same at every
        evaluation), timing.json and summary.md (a row a copy); returns metrics.json's "final"."""
        self.logger.close()
        members, run_dir = self.members, self.run_dir
        finished = [m for m in members if not m.failed]
        last = [metrics_of(m.history[-1]) for m in finished]
        size = len(members) + len(self.left_out)
        final = {"iteration": finished[0].history[-1]["iteration"], "copies": len(finished),
                 "failed": size - len(finished), **mean_and_std(last)}
        rows = [{"seed": m.cfg.seed, **values} for m, values in zip(finished, last)]
        if finished[0].t.keep_best:  # where each copy's best.pt is from, and what it scored
            metric = main_metric(finished[0].cfg)
            rows = [row | {f"best_{metric}": best[metric], "best_at": best["iteration"]}
                    for row, best in zip(rows, (m.best() for m in finished))]
        write_json(run_dir / "metrics.json", {"final": final, "history": self.history(), "copies": rows})
        if wall is not None:  # (None: nothing trained in this process, run.already_ended)
            write_json(run_dir / "timing.json", {"wall_time_s": wall, "first_iteration_s": first_iteration_s,
                                                  "startup_s": startup_s, "population": size,
                                                  "iterations": members[0].iterations - members[0].start})
        write_text(run_dir / "summary.md",
            f"# Population of {size} seeds ({final['failed']} failed)\n\n"
            + markdown_table(rows, list(rows[0])) + "\n\n"
            + spread_table(rows, [k for k in rows[0] if k not in ("seed", "best_at")]) + "\n")
        return final
