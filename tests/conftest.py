"""Shared helpers: compose configs the way train.py does, run real (small) trainings."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import suppress
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from ganlab.config import register_configs
from ganlab.run import COMPILES_WHOLE

ROOT = Path(__file__).resolve().parents[1]
register_configs(ROOT / "experiments")

# For a test of what train.compile=true does in a run: under a torch older than run.COMPILES_WHOLE
# the run trains the plain loop instead (tested on its own).
compiles_in_a_run = pytest.mark.skipif(torch.__version__ < COMPILES_WHOLE,
                                       reason=f"train.compile=true trains the plain loop before torch {COMPILES_WHOLE}")

# Small and fast, but a real training run through the real loop, logger and checkpoint code.
TINY = ["train.iterations=40", "train.batch_size=4", "train.eval_every=20", "train.log_every=10",
        "dataset.eval_samples=20", "train.checkpoint_every=20", "train.progress=false"]
MNIST_TINY = [*TINY, "dataset=mnist", "dataset.n_train=64", "dataset.eval_samples=32",
              "train.batch_size=8", "train.epochs=0", "train.eval_every_epochs=0"]


def compose_cfg(overrides: list[str] = ()) -> DictConfig:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


# Where a test's command runs unless it says otherwise: a run that stops before its directory is
# named (a bad command line) still gets Hydra's outputs/DATE/TIME/, and it belongs here, not in
# the checkout.
SCRATCH = Path(tempfile.mkdtemp(prefix="ganlab-tests-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)


def run_cli(*args: str, script: str = "train.py", cwd: Path = SCRATCH, timeout: int = 300,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run train.py (or generate.py) as a user would, in a subprocess."""
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def running_children() -> set[int]:
    """The processes this one started that still run (Linux: from /proc; elsewhere none known)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, IndexError, ValueError):
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
            if int(parent) == os.getpid() and state != "Z":
                found.add(int(stat.parent.name))
    return found


@pytest.fixture(autouse=True)
def no_run_left_training():
    """A test that fails before it stops the train.py it started (a run of a million iterations,
    waiting for a signal) would leave it training beside every later test, which then time out
    and fail too: such a process is killed when its test ends."""
    before = running_children()
    yield
    for pid in running_children() - before:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def train_tiny(tmp_path):
    """Train a tiny GAN in-process into tmp_path/<name>; returns the run directory."""
    from ganlab.run import train

    def _train(*overrides: str, name: str = "run") -> Path:
        run_dir = tmp_path / name
        train(compose_cfg([*TINY, *overrides]), run_dir=run_dir)
        return run_dir

    return _train


def read_events(run_dir: Path):
    """Read a run's TensorBoard event files with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    acc.Reload()
    return acc
