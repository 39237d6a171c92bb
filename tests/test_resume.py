"""Runs survive interruption, bad input and untrusted files, and lose nothing."""

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, SCRATCH, TINY, compiles_in_a_run, compose_cfg, read_events, run_cli
from ganlab import checkpoint
from ganlab.checkpoint import CheckpointError
from ganlab.errors import Diverged, UserError
from ganlab.distributed import Placement
from ganlab.member import Member
from ganlab.run import train

# A resumable tiny run: every checkpoint kept, so any of them can play "the last one before a crash".
RESUMABLE = [*TINY, "train.checkpoint_every=10", "train.keep_checkpoints=10", "train.eval_every=10",
             "train.g_ema=0.9", "train.lr_schedule=linear"]


def weights(run_dir, key="G", name="last.pt"):
    return checkpoint.load(run_dir / "checkpoints" / name)[key]


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def assert_same_run(a, b):
    assert (a / "metrics.json").read_bytes() == (b / "metrics.json").read_bytes()
    for key, name in (("G", "last.pt"), ("G_ema", "last.pt"), ("D", "last.pt"), ("G", "best.pt"), ("G_ema", "best.pt")):
        assert same_weights(weights(a, key, name), weights(b, key, name)), (key, name)


def best_until(run_dir, iteration, metric):
    """The iteration of the best evaluation up to `iteration`, from the checkpoint saved then."""
    history = checkpoint.load(run_dir / "checkpoints" / f"iter_{iteration:08d}.pt")["history"]
    return min(history, key=lambda entry: entry[metric])["iteration"]


def steps(run_dir, tag):
    return [e.step for e in read_events(run_dir).Scalars(tag)]


@pytest.mark.parametrize("killed_after", [10, 20, 30])
def test_resume_after_a_crash_is_bit_identical(tmp_path, killed_after):
    for extra in ([], ["dataset=mnist", "model=mnist", "dataset.n_train=64", "dataset.eval_samples=16",
                       "train.epochs=0", "train.eval_every_epochs=0", "dataset.shuffle=true"]):
        name = "mnist" if extra else "normal"
        never_stopped = tmp_path / f"{name}_a"
        train(compose_cfg([*RESUMABLE, *extra]), run_dir=never_stopped)
        # The same run, "killed" right after the checkpoint at `killed_after`: what a kill -9 leaves.
        crashed = tmp_path / f"{name}_b"
        shutil.copytree(never_stopped, crashed)
        (crashed / "metrics.json").unlink()
        shutil.copy(crashed / "checkpoints" / f"iter_{killed_after:08d}.pt", crashed / "checkpoints" / "last.pt")
        # ... with best.pt as it was then: the G of the best evaluation so far
        best = best_until(crashed, killed_after, "ks" if name == "normal" else "fd")
        saved = checkpoint.load(crashed / "checkpoints" / f"iter_{best:08d}.pt")
        checkpoint.save_atomic({k: saved[k] for k in ("format", "iteration", "G", "G_ema", "config")},
                               crashed / "checkpoints", name="best.pt")
        train(compose_cfg([*RESUMABLE, *extra, f"resume={crashed}"]))
        assert_same_run(never_stopped, crashed)
        # TensorBoard shows one curve: the steps logged after the checkpoint were purged, not duplicated.
        assert steps(crashed, "loss/d") == steps(never_stopped, "loss/d") == [10, 20, 30, 40]
        assert steps(crashed, "eval/" + ("ks" if name == "normal" else "fd")) == [10, 20, 30, 40]


def test_a_finished_run_extends_and_says_when_nothing_is_left(tmp_path, caplog):
    constant = [*RESUMABLE, "train.lr_schedule=constant"]
    train(compose_cfg([*constant, "train.iterations=40"]), run_dir=tmp_path / "long")
    train(compose_cfg([*constant, "train.iterations=20"]), run_dir=tmp_path / "short")
    train(compose_cfg([*constant, "train.iterations=40", f"resume={tmp_path / 'short'}"]))
    assert_same_run(tmp_path / "long", tmp_path / "short")
    before = (tmp_path / "short" / "checkpoints" / "last.pt").read_bytes()
    files = sorted((tmp_path / "short").rglob("*"))
    config = (tmp_path / "short" / "config.yaml").read_text()
    with caplog.at_level("INFO", logger="ganlab"):  # with a setting that may change on a resume
        train(compose_cfg([*constant, "train.iterations=40", "train.batch_size=8", f"resume={tmp_path / 'short'}"]))
    assert "nothing left to do" in caplog.text
    assert (tmp_path / "short" / "checkpoints" / "last.pt").read_bytes() == before
    assert sorted((tmp_path / "short").rglob("*")) == files  # not even an empty TensorBoard file
    assert (tmp_path / "short" / "config.yaml").read_text() == config  # what it trained with, not batch 8


@pytest.mark.parametrize("population", [1, 2])
def test_a_run_stopped_before_its_final_files_gets_them_when_resumed(tmp_path, caplog, population):
    """kill -9, a second Ctrl-C or a job's time limit between the last checkpoint and metrics.json:
    the same command plus resume= writes them (a sweep's summary lists a job without it as unfinished)."""
    args = [*TINY, f"train.population={population}"]
    finished = tmp_path / "finished"
    train(compose_cfg(args), run_dir=finished)
    stopped = tmp_path / "stopped"
    shutil.copytree(finished, stopped)
    final_files = ["metrics.json", "timing.json"] + (["summary.md", "seed_1/metrics.json"] if population > 1 else [])
    for name in final_files:
        (stopped / name).unlink()
    with caplog.at_level("INFO", logger="ganlab"):
        train(compose_cfg([*args, f"resume={stopped}"]))
    assert "stopped before writing its final files" in caplog.text
    for name in final_files:
        if name != "timing.json":  # that one describes the process that trained, which is gone
            assert (stopped / name).read_bytes() == (finished / name).read_bytes(), name
    assert not (stopped / "timing.json").exists()
    # TensorBoard's HParams data, which the killed process never wrote, is in the resumed one's event file
    copy = Path("seed_1") if population > 1 else Path(".")
    before = {p.name for p in (finished / copy).glob("events.out.tfevents.*")}
    (new_events,) = [p for p in (stopped / copy).glob("events.out.tfevents.*") if p.name not in before]
    assert "_hparams_/session_start_info" in read_events(new_events).PluginTagToContent("hparams")


def test_a_signal_during_the_final_writes_lets_them_finish_and_a_second_stops_them(tmp_path, monkeypatch):
    from ganlab import member
    from ganlab.run import SAME_REQUEST_S, Interrupted

    reference = tmp_path / "reference"
    train(compose_cfg(TINY), run_dir=reference)
    write_json = member.write_json
    for times in (1, 2):
        signals = [signal.SIGINT] * times

        def write_json_asked_to_stop(path, data):  # Ctrl-C arriving just as finish() writes metrics.json
            while signals:
                os.kill(os.getpid(), signals.pop())
                time.sleep(0.05 if not signals else SAME_REQUEST_S + 0.1)
            write_json(path, data)

        monkeypatch.setattr(member, "write_json", write_json_asked_to_stop)
        run_dir = tmp_path / f"asked_{times}"
        with pytest.raises(Interrupted) as stopped:
            train(compose_cfg(TINY), run_dir=run_dir)
        assert stopped.value.exit_code == 130 and not (run_dir / checkpoint.LOCK).exists()
        if times == 1:  # the final files are written, then the run stops (a sweep: before its next job)
            assert str(stopped.value).startswith("SIGINT at the end of the run: it had finished")
            assert (run_dir / "timing.json").exists()
        else:  # at once; the same command plus resume= writes them
            assert str(stopped.value).startswith("SIGINT twice: stopped at once, without saving; the newest "
                                                 f"checkpoint in {run_dir} is kept; continue with the same command plus resume=")
            assert not (run_dir / "metrics.json").exists()
            monkeypatch.setattr(member, "write_json", write_json)
            train(compose_cfg([*TINY, f"resume={run_dir}"]))
        assert (run_dir / "metrics.json").read_bytes() == (reference / "metrics.json").read_bytes()


def test_a_resume_that_changes_settings_says_which(train_tiny, caplog):
    # Settings the loop reads as it goes apply from the resumed iteration on, and the log says
    # so; what the checkpoint holds cannot change (test_bad_input_is_one_line_and_loses_nothing).
    run_dir = train_tiny()
    with caplog.at_level("INFO", logger="ganlab"):
        train(compose_cfg([*TINY, "train.iterations=60", "train.batch_size=8", "train.r1_gamma=1",
                           f"resume={run_dir}"]))
    assert ("resumed with other settings than the run trained with, from iteration 40 on: "
            "train.batch_size: 4 -> 8; train.r1_gamma: 10.0 -> 1.0") in caplog.text
    assert json.loads((run_dir / "metrics.json").read_text())["final"]["iteration"] == 60


def test_extending_a_run_with_annealed_rates_gives_it_the_longer_schedule_and_says_so(train_tiny, caplog):
    # The linear schedule reads the run's length, so a longer run's rates are higher at the
    # iteration it resumes from: a finished run's go back up from 0. Said, not left to surprise.
    run_dir = train_tiny("train.lr_schedule=linear")
    longer = [*TINY, "train.lr_schedule=linear", "train.iterations=80", f"resume={run_dir}"]
    base = compose_cfg(TINY).optimizer.d.lr
    # the first update after the resume already has the longer run's rate (the saved one is 0)
    member = Member(compose_cfg([*longer, "logger.tensorboard=false"]), run_dir, Placement(torch.device("cpu")))
    assert member.learning_rates() == {"lr/d": base * (1 - 40 / 80), "lr/g": base * (1 - 40 / 80)}
    with caplog.at_level("INFO", logger="ganlab"):
        train(compose_cfg(longer))
    assert ("from iteration 40 on: length: 40 -> 80 iterations (train.lr_schedule=linear: from here on the "
            "learning rates are those of a run of 80 iterations, annealed to 0 at its end)") in caplog.text
    logged = read_events(run_dir).Scalars("lr/d")
    assert [e.step for e in logged] == list(range(10, 81, 10))
    for e in logged:
        assert e.value == pytest.approx(base * (1 - e.step / (40 if e.step <= 40 else 80))), e.step


def test_a_run_saved_before_d_negative_slope_existed_keeps_its_relu(train_tiny):
    """The 1-D default's D became leaky (model.d_negative_slope=0.2); runs saved before have no
    such key and trained with ReLUs. A resume with today's default must not swap D's activation
    silently, and sampling from such a run builds the G it trained."""
    from ganlab.generate import load_generator

    run_dir = train_tiny("model.d_negative_slope=0")
    for path in (run_dir / "checkpoints").glob("*.pt"):  # as the code before the option wrote them
        state = checkpoint.load(path)
        state["config"]["model"].pop("d_negative_slope", None)  # (iter_*.pt: hard links to one of them)
        torch.save(state, path)
    load_generator(run_dir, "best")
    with pytest.raises(CheckpointError, match=r"trained with model.d_negative_slope=0.0 \(this command gives "
                                              r"model.d_negative_slope=0.2\).*or add model.d_negative_slope=0.0\)"):
        train(compose_cfg([*TINY, "train.iterations=60", f"resume={run_dir}"]))
    train(compose_cfg([*TINY, "train.iterations=60", "model.d_negative_slope=0", f"resume={run_dir}"]))
    assert json.loads((run_dir / "metrics.json").read_text())["final"]["iteration"] == 60


@pytest.mark.parametrize("hard_links", [True, False])
def test_only_last_and_the_newest_k_checkpoints_are_kept(train_tiny, monkeypatch, hard_links):
    if not hard_links:  # a FAT or exFAT drive, some network shares: a save failed there
        def no_hard_links(source, target):
            raise OSError(1, "Operation not permitted", str(source), None, str(target))

        monkeypatch.setattr(os, "link", no_hard_links)
    run_dir = train_tiny("train.checkpoint_every=10", "train.keep_checkpoints=2", "train.keep_best=false")
    saved = run_dir / "checkpoints"
    assert sorted(p.name for p in saved.iterdir()) == ["iter_00000030.pt", "iter_00000040.pt", "last.pt"]
    assert (saved / "iter_00000040.pt").read_bytes() == (saved / "last.pt").read_bytes()
    assert checkpoint.load(saved / "iter_00000030.pt")["iteration"] == 30


# Learning rates of 0.02 with the seed's ReLU D overshoot: KS falls, then rises again before
# iteration 40 (best.pt is not last.pt; the default's leaky D learns slower at these rates).
OVERSHOOT = ["optimizer.g.lr=0.02", "optimizer.d.lr=0.02", "model.d_negative_slope=0"]


@pytest.mark.parametrize("overrides,metric", [(OVERSHOOT, "ks"), ([*OVERSHOOT, "optimized_metric=w1"], "w1"),
                                              (["experiment=seed_normal", "train.compile=false"], "ks")])
def test_best_pt_holds_the_generator_of_the_best_evaluation(tmp_path, overrides, metric):
    run_dir = tmp_path / "run"
    train(compose_cfg([*RESUMABLE, *overrides, "train.eval_every=5", "train.checkpoint_every=5",
                       "train.keep_checkpoints=8"]), run_dir=run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history, best = metrics["history"], metrics["best"]
    assert len(history) == 8 and best in history
    assert best["iteration"] < 40 or OVERSHOOT[0] not in overrides  # the overshoot these cases are for
    assert all(best[metric] < entry[metric] for entry in history if entry["iteration"] < best["iteration"])
    assert all(best[metric] <= entry[metric] for entry in history)
    assert best["iteration"] == best_until(run_dir, 40, metric)
    for key in ("G", "G_ema"):
        assert same_weights(weights(run_dir, key, "best.pt"), weights(run_dir, key, f"iter_{best['iteration']:08d}.pt"))
        if best["iteration"] != 40:
            assert not same_weights(weights(run_dir, key, "best.pt"), weights(run_dir, key))
    assert "D" not in checkpoint.load(run_dir / "checkpoints" / "best.pt")  # only what sampling needs
    # best.pt is written with the checkpoints: evaluated more often than saved, the same best
    sparse = tmp_path / "sparse"
    train(compose_cfg([*RESUMABLE, *overrides, "train.eval_every=5", "train.checkpoint_every=20"]), run_dir=sparse)
    for key in ("G", "G_ema"):
        assert same_weights(weights(sparse, key, "best.pt"), weights(run_dir, key, "best.pt"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_a_checkpoint_and_the_run_resumes_identically(tmp_path, signum):
    args = [*TINY, "train.iterations=1000000", "train.lr_schedule=constant", "train.eval_every=10",
            "train.log_every=5", "train.checkpoint_every=100000"]
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={run_dir}"],
                            cwd=SCRATCH, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(run_dir.glob("events.out.tfevents.*")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # let it train a while
    # While it trains, the same run resumed a second time stops with one line, before Hydra
    # writes its .hydra/ there: two processes would save over each other's checkpoints.
    hydra_config = (run_dir / ".hydra" / "config.yaml").read_bytes()
    second = run_cli(*args, f"resume={run_dir}")
    assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert f"is in use: process {proc.pid} is training in it" in second.stderr
    assert (run_dir / ".hydra" / "config.yaml").read_bytes() == hydra_config
    t0 = time.time()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert time.time() - t0 < 10
    assert proc.returncode == 128 + signum, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("ganlab: error: " + signal.Signals(signum).name) and "resume=" in lines[-1]
    assert "Traceback" not in err
    stopped_at = checkpoint.load(run_dir / "checkpoints" / "last.pt")["iteration"]
    assert stopped_at > 0

    finish = ["train.iterations=" + str(stopped_at + 25)]
    result = run_cli(*args, *finish, f"resume={run_dir}")
    assert result.returncode == 0, result.stderr
    reference = tmp_path / "reference"
    train(compose_cfg([*args, *finish, "train.progress=false"]), run_dir=reference)
    assert_same_run(reference, run_dir)
    assert steps(run_dir, "loss/d") == steps(reference, "loss/d")


def test_a_second_signal_stops_at_once():
    from ganlab.run import SAME_REQUEST_S, stop_requests

    requested, before = [], signal.getsignal(signal.SIGINT)
    with stop_requests(requested):
        os.kill(os.getpid(), signal.SIGINT)  # the first: a flag, for the loop to save and stop
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # the same Ctrl-C again, forwarded by a launcher (submitit)
        time.sleep(0.05)
        assert requested == [signal.SIGINT]
        time.sleep(SAME_REQUEST_S)
        with pytest.raises(KeyboardInterrupt):  # a second request: at once, wherever the run is
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert signal.getsignal(signal.SIGINT) is before


@compiles_in_a_run
def test_a_second_signal_stops_a_run_at_once_while_it_compiles(tmp_path):
    """Asked twice while it compiles its first iteration (a cold compilation cache: tens of
    seconds), where no iteration ends to look at the flag. MNIST's: the 1-D GAN's is a few
    seconds, and once, in the full suite, its first iteration ended before the second signal."""
    from ganlab.run import SAME_REQUEST_S

    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *TINY, "dataset=mnist", "model=mnist",
                             "train.compile=true", f"hydra.run.dir={run_dir}"], cwd=SCRATCH, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")})
    deadline = time.time() + 120
    while "compiling" not in ((run_dir / "train.log").read_text() if (run_dir / "train.log").exists() else ""):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.2)
    time.sleep(1.0)
    for _ in range(2):
        proc.send_signal(signal.SIGINT)
        time.sleep(SAME_REQUEST_S + 0.2)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert lines[-1] == (f"ganlab: error: SIGINT twice: stopped at once, without saving; no checkpoint had been "
                         f"saved: remove {run_dir} and start again")
    assert "Traceback" not in err and not (run_dir / checkpoint.LOCK).exists()


def wait_for(condition, proc, seconds=120):
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else ""
        time.sleep(0.02)


def test_ctrl_c_outside_the_training_loop_says_what_it_left_without_a_traceback(tmp_path):
    # While starting: Python's own handling would print a traceback (imports, Hydra, building the models).
    run_dir = tmp_path / "run"
    start = [sys.executable, str(ROOT / "train.py"), *TINY, "dataset=mnist", "model=mnist", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(start, cwd=SCRATCH, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for((run_dir / ".hydra").exists, proc)  # Hydra has begun the run ...
    time.sleep(0.3)  # ... and ganlab imports torch (a second or more) and builds the models
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode in (-signal.SIGINT, 130), err  # ended by the signal, as a shell script expects
    assert err.strip().splitlines()[-1] == ("ganlab: error: SIGINT (Ctrl-C): stopped before the first iteration: "
                                            f"nothing was trained, and no checkpoint in {run_dir} changed")
    assert "Traceback" not in err and not (run_dir / checkpoint.LOCK).exists()


def test_a_ctrl_c_in_python_code_that_c_called_still_stops_the_process(tmp_path):
    # A KeyboardInterrupt cannot pass back through C: in torch's import (C++ that called Python,
    # pybind11) it aborted the process now and then, or was swallowed and the process went on
    # (experiments/README.md, "Ctrl-C during start-up"). Here C is libc's qsort, calling a
    # comparison written in Python; Python's own handling printed "Exception ignored on calling
    # ctypes callback function" with a traceback, and the process went on. ganlab's raises nothing.
    program = tmp_path / "sorts.py"
    program.write_text(
        "from ganlab.errors import report_ctrl_c\n"
        "report_ctrl_c('stopped while starting')\n"
        "import ctypes, os, signal, time\n"
        "def compare(a, b):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(1)\n"
        "    return a[0] - b[0]\n"
        "c_compare = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))\n"
        "values = (ctypes.c_int * 2)(2, 1)\n"
        "ctypes.CDLL(None).qsort(values, 2, ctypes.sizeof(ctypes.c_int), c_compare(compare))\n"
        "print('went on')\n")
    done = subprocess.run([sys.executable, str(program)], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGINT and done.stdout == "", done.stdout + done.stderr
    assert done.stderr == "ganlab: error: SIGINT (Ctrl-C): stopped while starting\n"


def run_under_driver(tmp_path, hook: str, *args: str) -> subprocess.CompletedProcess:
    """train.py ARGS run by a driver that first runs `hook`, Python code that sends a signal at one
    chosen moment (an exit handler, a profile hook), so that the signal lands there every time."""
    driver = tmp_path / "driver.py"
    driver.write_text("import atexit, os, runpy, signal, sys, threading, time\n" + hook
                      + "sys.argv[0] = sys.argv[1]\ndel sys.argv[1]\nrunpy.run_path(sys.argv[0], run_name='__main__')\n")
    return subprocess.run([sys.executable, str(driver), str(ROOT / "train.py"), *args], cwd=SCRATCH,
                          capture_output=True, text=True, timeout=120, start_new_session=True)


def test_a_ctrl_c_as_a_finished_run_exits_says_so_in_one_line(tmp_path):
    # Python's own handling raised KeyboardInterrupt in whatever ran next; in an atexit function
    # that printed "Exception ignored in atexit callback" and its traceback, and the exit code was 0.
    # (Inside torch's import, where C++ had called Python, the same interrupt aborted the process.)
    run_dir = tmp_path / "run"
    done = run_under_driver(tmp_path,
                            "def ctrl_c_as_the_process_exits():  # registered first, so it runs after train.py's own\n"
                            "    os.kill(os.getpid(), signal.SIGINT)\n"
                            "    time.sleep(30)\n"
                            "atexit.register(ctrl_c_as_the_process_exits)\n",
                            *TINY, f"hydra.run.dir={run_dir}")
    assert done.returncode == -signal.SIGINT, done.stderr
    line = f"ganlab: error: SIGINT (Ctrl-C): stopped after the run had finished; its files are in {run_dir}"
    assert done.stderr.strip().splitlines()[-1] == line and "Traceback" not in done.stderr
    assert (run_dir / "metrics.json").exists() and line[len("ganlab: error: "):] in (run_dir / "train.log").read_text()


@pytest.mark.parametrize("to, sig", [("terminal", signal.SIGINT), ("launcher", signal.SIGINT),
                                     ("launcher", signal.SIGTERM)], ids=["ctrl-c", "kill-int", "kill"])
def test_ctrl_c_on_a_joblib_sweep_lets_every_job_save_the_slow_one_too(tmp_path, to, sig):
    # terminal: the Ctrl-C reaches the launcher and every job. joblib kills the other jobs as soon
    # as one job's stop reaches it, so a job that saves later (here a bigger batch) lost its
    # training: on a GPU even two equal jobs did, and on a CPU this pair did every time.
    # launcher: `kill -INT` of the launcher alone said that the jobs save and stop, and none did;
    # `kill` (SIGTERM) ended the launcher at once and left its jobs training, orphaned.
    sweep = tmp_path / "sweep"
    tiny = [o for o in TINY if not o.startswith("train.batch_size=")]
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "-m", "hydra/launcher=joblib",
                             "hydra.launcher.n_jobs=2", "dataset=mnist", "model=mnist", "train.batch_size=4,512",
                             *tiny, "train.iterations=1000000", "train.checkpoint_every=1000000",
                             f"hydra.sweep.dir={sweep}"],
                            cwd=SCRATCH, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)

    def in_their_loops():
        return sum("run directory" in job.read_text() for job in sweep.glob("*/train.log")) == 2

    try:
        wait_for(in_their_loops, proc)
        time.sleep(0.5)
        (os.killpg if to == "terminal" else os.kill)(proc.pid, sig)
        out, err = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + sig and "Traceback" not in err, err
    lines = err.strip().splitlines()
    # The launcher waited for its jobs: each saved a checkpoint and said so.
    again = "Ctrl-C" if sig == signal.SIGINT else sig.name
    assert f"ganlab: {sig.name}: the running jobs save a checkpoint and stop ({again} again: at once)" in lines
    saved = [line for line in lines if line.startswith("ganlab: error: SIGINT at iteration")]  # as it asked them
    assert len(saved) == 2 and all(line.endswith("continue the sweep with the same command plus resume=auto "
                                                 f"hydra.sweep.dir={sweep}") for line in saved), err
    jobs = sorted(sweep.glob("*batch_size=*"))
    assert len(jobs) == 2 and all(checkpoint.resumable(job) for job in jobs)
    assert not any(sweep.rglob(checkpoint.LOCK))


JOBLIB_SWEEP = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1", *TINY]  # two tiny jobs


def test_a_signal_to_a_joblib_sweep_before_any_job_trains_ends_it_with_the_sweeps_line(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *JOBLIB_SWEEP, f"hydra.sweep.dir={sweep}"],
                            cwd=SCRATCH, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        wait_for((sweep / "multirun.yaml").exists, proc)  # the launcher starts its workers: seconds before a job trains
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGTERM and err.strip().splitlines() == [
        "ganlab: error: SIGTERM: the sweep stopped (a job in training saved a checkpoint where it could); continue it "
        f"with the same command plus resume=auto hydra.sweep.dir={sweep}"], err


@pytest.mark.parametrize("where", [
    # OmegaConf's ListConfig.append: a placeholder None, then the item, which this call makes
    "frame.f_code.co_name == '_wrap_value_and_set' and frame.f_back.f_back.f_code.co_name == 'append'",
    # Hydra's config source: `f = res.open(...)` in a try whose finally closes f
    "frame.f_code.co_name == 'open' and frame.f_back.f_code.co_name == '_read_config'",
], ids=["omegaconf", "hydra"])
def test_a_signal_while_the_launcher_builds_a_jobs_config_ends_the_sweep_with_its_line(tmp_path, where):
    """The test above failed once in CI: its SIGTERM landed while Hydra built a job's config, inside
    OmegaConf's ListConfig.append, between the placeholder None it adds and the node that replaces
    it. The launcher's handler raised SystemExit there; OmegaConf's cleanup then tripped over the
    placeholder, and that error, not the stop, decided how the sweep ended: "'NoneType' object has
    no attribute '_invalidate_flags_cache'", exit code 2. Hydra's config source did the like
    (UnboundLocalError, exit code 1). The driver sends the signal at those moments."""
    sweep = tmp_path / "sweep"
    done = run_under_driver(tmp_path,
                            "def profile(frame, event, arg):\n"
                            f"    if event == 'call' and {where} \\\n"
                            "            and signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:  # the sweep's handler\n"
                            "        sys.setprofile(None)\n"
                            "        os.kill(os.getpid(), signal.SIGTERM)\n"
                            "sys.setprofile(profile)\n",
                            *JOBLIB_SWEEP, f"hydra.sweep.dir={sweep}")
    assert done.returncode == 128 + signal.SIGTERM and done.stderr.strip().splitlines() == [
        "ganlab: error: SIGTERM: the sweep stopped (a job in training saved a checkpoint where it could); continue it "
        f"with the same command plus resume=auto hydra.sweep.dir={sweep}"], done.stderr
    assert not any(sweep.glob("*/.hydra")), "no job ran"


def test_a_signal_inside_a_finalizer_still_ends_the_sweep(tmp_path):
    """A signal handled inside a finalizer (a __del__, a weakref callback: Python runs them where
    an object is let go of, the garbage collector among them): Python swallows an exception raised
    there ("Exception ignored in"), and the sweep's SystemExit was lost: a traceback, then the
    sweep ran on to the end, exit code 0 (experiments/README.md, "Signals to a joblib sweep").
    This driver sends the signal from a __del__, every time."""
    sweep = tmp_path / "sweep"
    done = run_under_driver(tmp_path,
                            "class SignalWhenLetGo:\n"
                            "    def __del__(self):\n"
                            "        os.kill(os.getpid(), signal.SIGTERM)\n"
                            "def profile(frame, event, arg):\n"
                            "    if event == 'call' and signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:\n"
                            "        sys.setprofile(None)\n"
                            "        SignalWhenLetGo()  # made and let go of at once: its __del__ runs here\n"
                            "sys.setprofile(profile)\n",
                            *JOBLIB_SWEEP, f"hydra.sweep.dir={sweep}")
    assert done.returncode == 128 + signal.SIGTERM and done.stderr.strip().splitlines() == [
        "ganlab: error: SIGTERM: the sweep stopped (a job in training saved a checkpoint where it could); continue it "
        f"with the same command plus resume=auto hydra.sweep.dir={sweep}"], done.stderr
    assert not any(sweep.glob("*/metrics.json"))


def test_a_signal_as_a_finished_joblib_sweep_exits_says_so_in_one_line(tmp_path):
    """After the last job and the summary the launcher takes a moment more to exit (loky ends its
    workers). A SIGTERM there raised SystemExit into the interpreter's shutdown: "Exception ignored
    in: <module 'threading'>", a traceback, and exit code 0 (experiments/README.md, "Signals to a
    joblib sweep"). The driver sends it from the same place, threading's exit handlers."""
    sweep = tmp_path / "sweep"
    done = run_under_driver(tmp_path,
                            "def signal_as_the_launcher_exits():\n"
                            "    os.kill(os.getpid(), signal.SIGTERM)\n"
                            "    time.sleep(0.1)\n"
                            "threading._register_atexit(signal_as_the_launcher_exits)\n",
                            *JOBLIB_SWEEP, f"hydra.sweep.dir={sweep}")
    assert done.returncode == 128 + signal.SIGTERM and done.stderr.strip().splitlines() == [
        f"ganlab: error: SIGTERM: stopped after the sweep had finished; its files are in {sweep}"], done.stderr
    assert (sweep / "summary.md").exists() and len(list(sweep.glob("*/metrics.json"))) == 2


def test_a_run_started_with_ctrl_c_ignored_keeps_ignoring_it(tmp_path):
    """A script's `python train.py &` runs with SIGINT ignored (bash, without job control), so that
    Ctrl-C stops the script's foreground command only; Python keeps that, and so does the loop."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *TINY, "train.iterations=1000000",
                             f"hydra.run.dir={run_dir}"], cwd=SCRATCH, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    wait_for(lambda: any(run_dir.glob("events.out.tfevents.*")), proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(1.5)
    assert proc.poll() is None  # still training
    proc.send_signal(signal.SIGTERM)  # which it handles as ever: a checkpoint, then one line
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1].startswith("ganlab: error: SIGTERM at iteration")


@pytest.mark.parametrize("what", ["run", "joblib sweep"])
def test_closing_the_terminal_saves_a_checkpoint_and_stops(tmp_path, what):
    """An SSH connection that drops, or a terminal window closed: the kernel sends SIGHUP to the
    terminal's processes, which killed a run outright (and a sweep's launcher and every job):
    all since the last checkpoint was lost."""
    import pty
    import select

    if what == "run":
        args = [f"hydra.run.dir={tmp_path / 'run'}"]
    else:
        args = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1", f"hydra.sweep.dir={tmp_path}"]
    # on the terminal the progress bar redraws in place; after the hang-up it cannot write
    command = [sys.executable, str(ROOT / "train.py"), *(["-m"] if what != "run" else []), *TINY,
               "train.progress=true", "train.iterations=1000000", "train.checkpoint_every=1000000", *args]
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a session of its own, the pseudo-terminal its controlling terminal
        os.chdir(SCRATCH)
        os.execv(sys.executable, command)
    try:
        deadline, jobs = time.time() + 120, 1 if what == "run" else 2
        while sum("run directory" in log.read_text() for log in tmp_path.glob("*/train.log")) < jobs:  # in the loop
            assert time.time() < deadline
            if select.select([terminal], [], [], 0.1)[0]:
                os.read(terminal, 65536)  # what it prints, read as a terminal would
        time.sleep(1)
    finally:
        os.close(terminal)  # the hang-up
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 128 + signal.SIGHUP, status
    runs = [log.parent for log in tmp_path.glob("*/train.log")]
    assert len(runs) == jobs and all(checkpoint.resumable(run) for run in runs)
    assert not any(tmp_path.rglob(checkpoint.LOCK))
    # The line that said so went to a terminal that is gone: the run's log has it too. (A sweep's
    # jobs say SIGINT: the hang-up reaches the session's leader, here the launcher, which asks them.)
    last = [(run / "train.log").read_text().splitlines()[-1] for run in runs]
    assert all(re.search(r"\[ERROR\] - SIG(HUP|INT) at iteration \d+: checkpoint saved", line) for line in last), last


def test_a_file_written_whole_replaces_the_old_one_only_when_complete(tmp_path):
    from ganlab.files import write_json, written_whole

    path = tmp_path / "metrics.json"
    write_json(path, {"final": 1})
    with pytest.raises(KeyboardInterrupt):
        with written_whole(path) as f:
            f.write(b'{"final": ')
            raise KeyboardInterrupt  # a Ctrl-C (or a full disk) half-way
    assert json.loads(path.read_text()) == {"final": 1} and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    write_json(path, {"final": 2})
    assert json.loads(path.read_text()) == {"final": 2} and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    # Plain SGD with lr 1 on the least-squares loss blows up within a few iterations.
    cfg = compose_cfg([*TINY, "train.iterations=200", "train.checkpoint_every=1", "train.r1_gamma=0",
                       "train.lr_schedule=constant", "optimizer=sgd_nesterov", "optimizer.d.lr=1",
                       "optimizer.g.lr=1", "train.loss=lsgan"])
    with pytest.raises(Diverged, match=r"the losses became NaN or infinite at iteration \d+ ") as info:
        train(cfg, run_dir=run_dir)
    state = checkpoint.load(run_dir / "checkpoints" / "last.pt")
    assert state["iteration"] >= 1 and f"at iteration {state['iteration'] + 1} " in str(info.value)
    assert all(torch.isfinite(t).all() for t in [*state["G"].values(), *state["D"].values()])
    assert "last.pt keeps the last good state, for generate.py; start a new run with lower learning rates" \
        in str(info.value)  # (not resume it: it repeats the same steps, and a resume keeps the optimizers' settings)
    # Diverged before any checkpoint was due: the message does not point at a file that is not there
    cfg.train.checkpoint_every = 1000
    with pytest.raises(Diverged, match=r"no checkpoint was due before it \(train.checkpoint_every\)"):
        train(cfg, run_dir=tmp_path / "early")
    # A diverged run is a result: resumed, it would repeat the same steps, so the resume says how it ended
    # (before: the same steps again; or, where it had no checkpoint, "no checkpoint there" / "already holds a run")
    for run_dir in (run_dir, tmp_path / "early"):
        with pytest.raises(Diverged, match=rf"^{re.escape(str(run_dir))} ended in an earlier process \(diverged: the "
                                           r"losses became NaN or infinite .* \(now .*\)\); resumed, it "
                                           "would repeat the same steps; start a new run with lower learning rates"):
            train(compose_cfg([f"resume={run_dir}"]))
    args = [*TINY, "train.iterations=200", "train.checkpoint_every=1000", "train.r1_gamma=0",
            "train.lr_schedule=constant", "optimizer=sgd_nesterov", "optimizer.d.lr=1", "optimizer.g.lr=1",
            "train.loss=lsgan"]
    sampled = run_cli(f"run={tmp_path / 'early'}", script="generate.py")  # (it said "no checkpoint there")
    assert sampled.returncode == 2 and sampled.stderr.startswith(
        f"ganlab: error: {tmp_path / 'early'} has no checkpoint: it diverged before its first (train.checkpoint_every), "
        "the losses became NaN or infinite"), sampled.stderr
    for resume in (f"resume={tmp_path / 'early'}", "resume=auto"):
        result = run_cli(*args, resume, f"hydra.run.dir={tmp_path / 'early'}")
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and "ended in an earlier process (diverged: " in lines[0], \
            result.stderr


class RunsCode:
    """Unpickling this would create a file: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_checkpoint_that_runs_code_is_refused_and_the_code_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    torch.save({"iteration": 1, "config": {}, "payload": RunsCode(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        checkpoint.load(path)
    result = run_cli(f"resume={tmp_path / 'run'}")
    assert result.returncode == 2 and "refused" in result.stderr
    assert not marker.exists()


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    directory = tmp_path / "checkpoints"
    checkpoint.save_atomic({"format": checkpoint.FORMAT, "iteration": 1, "config": {}, "w": torch.ones(3)}, directory)

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(CheckpointError, match="No space left on device"):
        checkpoint.save_atomic({"format": checkpoint.FORMAT, "iteration": 2, "config": {}, "w": torch.zeros(3)},
                               directory)
    assert checkpoint.load(directory / "last.pt")["iteration"] == 1
    assert [p.name for p in directory.iterdir()] == ["last.pt"]


def test_a_full_disk_while_training_is_one_line_and_the_run_continues(tmp_path):
    import resource

    # A file-size limit (Python ignores SIGXFSZ, so a write past it fails with EFBIG as a full disk
    # fails with ENOSPC): the checkpoints fit under it, the event file, logging every iteration, not.
    run_dir = tmp_path / "run"
    args = [*TINY, "train.iterations=1000000", "train.log_every=1", "train.eval_every=10", "train.checkpoint_every=10"]
    limit = 250_000
    full = subprocess.run([sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={run_dir}"], cwd=SCRATCH,
                          capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr
    assert full.stderr.strip().splitlines()[-1] == (
        f"ganlab: error: could not write the run's files in {run_dir} (File too large); the newest checkpoint in "
        f"{run_dir} is kept; make room, then continue with the same command plus resume={run_dir}")
    stopped_at = checkpoint.load(run_dir / "checkpoints" / "last.pt")["iteration"]
    assert stopped_at > 0 and not (run_dir / checkpoint.LOCK).exists()
    # Room made: the same command plus resume= continues, and TensorBoard shows one curve
    result = run_cli(*args, f"train.iterations={stopped_at + 20}", f"resume={run_dir}")
    assert result.returncode == 0, result.stderr
    assert steps(run_dir, "loss/d") == list(range(1, stopped_at + 21))


def test_a_batch_or_model_too_big_for_memory_is_one_line_and_keeps_the_checkpoint(train_tiny):
    # torch's allocator says so in a RuntimeError, which ended in a traceback from deep in a layer.
    # (Sizes no machine has: the allocation fails at once, whatever the machine.)
    run_dir = train_tiny("train.iterations=20")
    last = (run_dir / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(UserError) as too_big:  # a batch for the resumed iterations
        train_tiny("train.iterations=40", "train.batch_size=10000000000000", f"resume={run_dir}")
    assert re.fullmatch(rf"out of memory on \w+ \(an allocation of [\d.]+ \w+ failed\); the newest checkpoint in "
                        rf"{re.escape(str(run_dir))} is kept; lower train.batch_size \(or the model's size, "
                        rf"train.population or dataset.eval_samples\), then continue with the same command",
                        str(too_big.value))
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == last and not (run_dir / checkpoint.LOCK).exists()
    with pytest.raises(UserError, match="^out of memory on .*no checkpoint had been saved"):  # a model
        train_tiny("model.d_hidden=10000000000000", name="wide")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the cap reads Linux's /proc")
def test_a_cpu_run_cannot_allocate_more_than_the_memory_available(tmp_path):
    """Untouched memory beyond what is available is promised by the kernel (overcommit), so a batch
    too big for the machine was not refused: it filled memory until the kernel killed the run,
    without a line (dataset=mnist train.batch_size=5000 model.width=1024 here, after 4.5 minutes).
    A CPU run (on a machine without a GPU) and generate.py now cap the address space at what the
    process holds plus what is available."""
    code = """if True:
        import os, resource, torch
        from ganlab import memory
        available = memory._number("/proc/meminfo", "MemAvailable") + memory._number("/proc/meminfo", "SwapFree")
        machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") + memory._number("/proc/meminfo", "SwapTotal")
        beyond = (available + machine) // 2  # more than is available, less than the machine has
        before = resource.getrlimit(resource.RLIMIT_AS)
        with memory.within_available_memory():
            try:
                torch.empty(beyond, dtype=torch.uint8)
                print("allocated under the cap")
            except RuntimeError as error:
                print("refused:", error)
        assert resource.getrlimit(resource.RLIMIT_AS) == before
        torch.empty(beyond, dtype=torch.uint8)  # the kernel's own rule lets it through
        print("allocated without the cap", open("/proc/sys/vm/overcommit_memory").read())
    """
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert re.search(r"^refused: .*can't allocate memory", result.stdout, re.MULTILINE), result.stdout + result.stderr
    strict = Path("/proc/sys/vm/overcommit_memory").read_text().strip() == "2"
    assert strict or ("allocated without the cap" in result.stdout and result.returncode == 0), result.stderr


def memory_limited_cgroup(limit: int) -> Path | None:
    """A new cgroup with a memory limit, as a container has (docker run --memory); None where this
    user cannot make one (it takes root and a writable cgroup file system, version 1 or 2)."""
    for parent, limit_file in ((Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"),
                               (Path("/sys/fs/cgroup"), "memory.max")):
        group = parent / f"ganlab-test-{os.getpid()}"
        if not (parent / "cgroup.procs").exists():  # (not a cgroup file system: a tmpfs holding them, say)
            continue
        try:
            group.mkdir()
        except OSError:
            continue
        try:
            (group / limit_file).write_text(str(limit))
            return group
        except OSError:
            group.rmdir()
    return None


@pytest.mark.skipif(torch.cuda.is_available(), reason="the cap is for machines without a GPU (run.capped)")
def test_a_run_in_a_container_with_a_memory_limit_stops_with_one_line_before_the_limit(tmp_path):
    """A container's limit (its cgroup's) is below the memory the machine has available, and a
    batch too big for it was killed by the kernel at the limit: exit code 137, without a line."""
    group = memory_limited_cgroup(2 * 2**30)
    if group is None:
        pytest.skip("cannot make a cgroup with a memory limit here (it takes root)")
    try:
        result = subprocess.run(
            [sys.executable, str(ROOT / "train.py"), "dataset=mnist", "train.batch_size=2000", "model.width=256",
             "train.iterations=3", "train.progress=false", f"hydra.run.dir={tmp_path / 'run'}"],
            cwd=SCRATCH, capture_output=True, text=True, timeout=300,
            preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())))
    finally:
        group.rmdir()  # (empty: its one process has ended)
    assert result.returncode == 2, result.stderr[-2000:]
    assert re.fullmatch(r"ganlab: error: out of memory on cpu \(an allocation of [\d.]+ GB failed\); no checkpoint had "
                        r"been saved: lower train.batch_size .*", result.stderr.strip().splitlines()[-1])


@pytest.mark.skipif(torch.cuda.is_available(), reason="the cap is for machines without a GPU (run.capped)")
def test_too_many_evaluation_samples_for_memory_is_one_line_that_names_them(train_tiny):
    # (its fix named the batch, the model and the population only)
    with pytest.raises(UserError, match=r"^out of memory on cpu \(an allocation of [\d.]+ GB failed\); no checkpoint "
                       r"had been saved: lower .*dataset.eval_samples\)"):
        train_tiny("dataset.eval_samples=2000000000", "train.device=cpu")


def test_a_lock_left_by_a_process_that_is_gone_is_taken_over_and_another_hosts_is_not(train_tiny, tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / checkpoint.LOCK).write_text(f"{socket.gethostname()} {gone.stdout.strip()}\n")  # kill -9, say
    train_tiny(name="run")
    assert (run_dir / "checkpoints" / "last.pt").exists() and not (run_dir / checkpoint.LOCK).exists()
    (run_dir / checkpoint.LOCK).write_text("another-node 1234\n")  # a run on a shared file system
    with pytest.raises(checkpoint.CheckpointError, match="process 1234 on another-node is training in it"):
        train_tiny("train.iterations=60", "resume=" + str(run_dir), name="run")


def test_two_runs_started_together_for_one_directory_leave_the_winners_config_alone(tmp_path):
    # `for s in 1 2; do python train.py seed=$s hydra.run.dir=runs/x & done`: both used to pass the
    # check before Hydra, and the loser's Hydra wrote its .hydra/ over the winner's (3 times in 4).
    for attempt in range(3):
        run_dir = tmp_path / f"run{attempt}"
        procs = {seed: subprocess.Popen([sys.executable, str(ROOT / "train.py"), *TINY, f"seed={seed}",
                                         f"hydra.run.dir={run_dir}"], cwd=SCRATCH, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True) for seed in (1, 2)}
        results = {seed: (proc.wait(timeout=300), proc.communicate()[1]) for seed, proc in procs.items()}
        (winner,) = [seed for seed, (code, _) in results.items() if code == 0]
        (code, err), = [result for seed, result in results.items() if seed != winner]
        assert code == 2 and f"{run_dir} is in use: process {procs[winner].pid}" in err, err
        assert f"seed={winner}" in (run_dir / ".hydra" / "overrides.yaml").read_text()
        assert f"seed: {winner}" in (run_dir / "config.yaml").read_text()
        assert "error" not in (run_dir / "train.log").read_text()


def test_a_populations_copy_is_in_use_while_the_population_trains_and_the_other_way_round(tmp_path):
    population = tmp_path / "pop"
    for copy in ("seed_0", "seed_1"):
        (population / copy).mkdir(parents=True)
    live = f"{socket.gethostname()} 1\n"  # init: a process that is alive and is not this one
    (population / checkpoint.LOCK).write_text(live)
    with pytest.raises(checkpoint.CheckpointError, match="pop is in use: process 1 is"):
        checkpoint.check_not_in_use(population / "seed_0")
    (population / checkpoint.LOCK).unlink()
    checkpoint.check_not_in_use(population / "seed_0")
    (population / "seed_1" / checkpoint.LOCK).write_text(live)
    with pytest.raises(checkpoint.CheckpointError, match="seed_1 is in use"):
        checkpoint.check_not_in_use(population)


def test_a_sweeps_directory_names_one_of_its_jobs_as_it_must_be_typed(finished_run, tmp_path):
    """The job's name holds `=` and `,`, which Hydra's grammar reads as a list: the suggestion is
    quoted so that it can be pasted as it is, into train.py's resume= and generate.py's run=."""
    sweep = sweep_of(finished_run, tmp_path)
    for script, given, more, done in (
            ("train.py", f"resume={sweep}", TINY, "nothing left to do: "),  # the job had finished
            ("generate.py", f"run={sweep}", [f"out={tmp_path}/samples"], "wrote ")):
        refused = run_cli(given, *more, script=script)
        assert refused.returncode == 2, refused.stderr
        suggested = shlex.split(re.search(r"e\.g\. (\S+)", refused.stderr)[1])
        assert suggested == [f"{given.split('=')[0]}=\"{sweep / 'seed=0,train.loss=bce'}\""]  # for Hydra
        pasted = run_cli(*suggested, *more, script=script)
        assert pasted.returncode == 0 and done in pasted.stdout + pasted.stderr, pasted.stderr
    # resume=auto there would have started a new run in the sweep's directory, among its jobs
    before = sorted(sweep.rglob("*"))
    refused = run_cli(*TINY, "resume=auto", f"hydra.run.dir={sweep}")
    assert refused.returncode == 2 and "is a sweep's directory, not a run" in refused.stderr, refused.stderr
    assert sorted(sweep.rglob("*")) == before


def test_resuming_a_missing_run_creates_nothing(tmp_path):
    result = run_cli(f"resume={tmp_path / 'missing'}")
    assert result.returncode == 2 and "no checkpoint there" in result.stderr
    assert not (tmp_path / "missing").exists()


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    train(compose_cfg(TINY), run_dir=run_dir)
    return run_dir


def truncated_copy(run_dir, tmp_path):
    copy = tmp_path / "truncated"
    shutil.copytree(run_dir, copy)
    last = copy / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    return copy


def overwritten_copy(run_dir, tmp_path):
    """last.pt overwritten by something that is no checkpoint at all (a log, a half-copied file)."""
    copy = tmp_path / "overwritten"
    shutil.copytree(run_dir, copy)
    (copy / "checkpoints" / "last.pt").write_text("garbage\n")
    return copy


def older_copy(run_dir, tmp_path):
    """The run as an older ganlab would have saved it (no checkpoint format inside)."""
    copy = tmp_path / "older"
    shutil.copytree(run_dir, copy)
    last = copy / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    del state["format"]
    torch.save(state, last)
    return copy


def file_in_the_way(run_dir, tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    return tmp_path / "a_file" / "run"


def stopped_before_its_first_checkpoint(run_dir, tmp_path):
    """A run killed before it saved anything: its TensorBoard file, no checkpoint to continue."""
    copy = tmp_path / "early"
    copy.mkdir()
    shutil.copy(next(run_dir.glob("events.out.tfevents.*")), copy)
    return copy


def sweep_of(run_dir, tmp_path):
    """A sweep's directory holding the finished run as its one job, named as Hydra names jobs."""
    sweep = tmp_path / "sweep"
    shutil.copytree(run_dir, sweep / "seed=0,train.loss=bce")
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return sweep


# (case, how to build the command line from the finished run, words the one line must hold)
BAD_INPUT = [
    ("no checkpoint", lambda run, tmp: [f"resume={tmp}"], "no checkpoint there"),
    ("a checkpoint file for its run", lambda run, tmp: [*TINY, f"resume={run}/checkpoints/last.pt"],
     "last.pt is a file; give the directory of the run that holds it, "),
    ("an empty resume=", lambda run, tmp: [*TINY, "resume="], "resume= is empty"),
    ("a folder inside a run", lambda run, tmp: [*TINY, f"resume={run}/checkpoints"],
     "/checkpoints lies inside the run "),
    ("the folder above a run", lambda run, tmp: [*TINY, f"resume={run.parent}"],
     "is not a run, but holds runs: give one, e.g. resume="),
    ("a sweep's directory", lambda run, tmp: [*TINY, f"resume={sweep_of(run, tmp)}"],
     "is a sweep's directory, not a run: give one of its jobs, e.g. 'resume=\""),
    ("a new run into a sweep's directory", lambda run, tmp: [*TINY, f"hydra.run.dir={sweep_of(run, tmp)}"],
     "is a sweep's directory, not a run: give one of its jobs, e.g. 'resume=\""),
    ("truncated checkpoint", lambda run, tmp: [*TINY, f"resume={truncated_copy(run, tmp)}"],
     "truncated or corrupt"),
    ("no checkpoint at all", lambda run, tmp: [*TINY, f"resume={overwritten_copy(run, tmp)}"],
     "truncated or corrupt checkpoint (not the zip archive"),
    ("checkpoint of an older ganlab", lambda run, tmp: [*TINY, f"resume={older_copy(run, tmp)}"],
     "checkpoint format 1"),
    ("other model", lambda run, tmp: [*TINY, "model.d_hidden=7", f"resume={run}"],
     "trained with model.d_hidden=50 (this command gives model.d_hidden=7), which a resumed run keeps"),
    ("other dataset", lambda run, tmp: [*TINY, "dataset.std=2.0", f"resume={run}"], "dataset.std=2.0), which"),
    ("other optimizer", lambda run, tmp: [*TINY, "optimizer=sgd_nesterov", f"resume={run}"],
     "optimizer.d.name=adam"),
    ("other learning rate", lambda run, tmp: [*TINY, "optimizer.g.lr=0.001", f"resume={run}"],
     "trained with optimizer.g.lr=0.002 (this command gives optimizer.g.lr=0.001)"),
    ("weight average dropped", lambda run, tmp: [*TINY, "train.g_ema=0", f"resume={run}"], "train.g_ema=0.999"),
    ("other seed", lambda run, tmp: [*TINY, "seed=5", f"resume={run}"], "trained with seed=0"),
    ("unwritable run dir", lambda run, tmp: [*TINY, f"hydra.run.dir={file_in_the_way(run, tmp)}"],
     "(Not a directory); choose a writable directory with hydra.run.dir=DIR"),
    ("unwritable sweep dir", lambda run, tmp: ["-m", "seed=0,1", *TINY, f"hydra.sweep.dir={file_in_the_way(run, tmp)}"],
     "(Not a directory); choose a writable directory with hydra.sweep.dir=DIR"),  # (it said hydra.run.dir)
    ("a new run into an earlier run's directory", lambda run, tmp: [*TINY, f"hydra.run.dir={run}"],
     "already holds a run"),
    # (before: the run trained on in its directory, and Hydra wrote .hydra/ and the log into the other)
    ("a resume into another directory", lambda run, tmp: [*TINY, f"resume={run}", f"hydra.run.dir={tmp}/other"],
     "continues that run in its own directory, and hydra.run.dir="),
    ("resume=auto where nothing can be continued", lambda run, tmp: [
        *TINY, "resume=auto", f"hydra.run.dir={stopped_before_its_first_checkpoint(run, tmp)}"], "; remove it"),
    ("missing MNIST files", lambda run, tmp: ["dataset=mnist", f"dataset.root={tmp}", f"hydra.run.dir={tmp}/r"],
     "no train-images-idx3-ubyte"),
    ("nesterov without momentum", lambda run, tmp: ["optimizer.g.name=sgd", "optimizer.g.nesterov=true",
                                                    f"resume={run}"], "optimizer.g.momentum"),
    ("model for another dataset", lambda run, tmp: ["dataset=mnist", "model=normal"], "does not fit dataset=mnist"),
    ("epochs on endless data", lambda run, tmp: ["train.epochs=3"], "train.epochs"),
    ("population of BatchNorm models", lambda run, tmp: ["dataset=mnist", "train.population=2",
                                                         f"hydra.run.dir={tmp}/r"], "without BatchNorm"),
]


@pytest.mark.parametrize("args,fix", [
    (["resume=auto"], "resume=auto continues the run in hydra.run.dir, and none is given: outputs/DATE/TIME is new "
                      "each time, so there is nothing to continue; add the run's hydra.run.dir=DIR, or give resume=DIR"),
    (["-m", "seed=0,1", "resume=auto"], "resume=auto continues the sweep in hydra.sweep.dir, and none is given: "
                                        "multirun/DATE/TIME is new each time, so there is nothing to continue; add the "
                                        "sweep's hydra.sweep.dir=DIR"),
])
def test_resume_auto_without_the_directory_to_continue_is_one_line(tmp_path, args, fix):
    """Before, it trained a new run (or sweep) in a new outputs/DATE/TIME, and continued nothing."""
    result = run_cli(*args, *TINY, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [f"ganlab: error: {fix}"], result.stderr
    assert not any(tmp_path.iterdir())


def test_a_refused_resume_names_the_command_that_started_the_run_and_leaves_its_record(tmp_path):
    """The fix once said "or add dataset.name=normal, model.name=gan1d, ...", which cannot be given
    (a dataset is chosen with dataset=NAME), and Hydra had written the refused command's config and
    overrides over the run's .hydra/, its record of how it was trained."""
    run_dir = tmp_path / "run"
    started = [*TINY, f"hydra.run.dir={run_dir}"]
    assert run_cli(*started).returncode == 0
    record = {path.name: path.read_bytes() for path in (run_dir / ".hydra").iterdir()}
    for other, add in ((["model.d_hidden=7"], " (or add model.d_hidden=50)"), (["dataset=mnist"], "")):
        result = run_cli(*TINY, *other, f"resume={run_dir}")
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines()[-1].endswith(
            f"resume it with the command that started it, `python train.py {' '.join(started)}` (environment.json), "
            f"plus resume={run_dir}{add}, or start a new run")
        assert {path.name: path.read_bytes() for path in (run_dir / ".hydra").iterdir()} == record
    again = run_cli(*started, f"resume={run_dir}", "train.iterations=60")  # the command it names works
    assert again.returncode == 0, again.stderr
    assert json.loads((run_dir / "metrics.json").read_text())["final"]["iteration"] == 60
    assert {path.name: path.read_bytes() for path in (run_dir / ".hydra").iterdir()} == record


@pytest.mark.parametrize("case,make_args,words", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_one_line_and_loses_nothing(finished_run, tmp_path, case, make_args, words):
    before = {p: sha(p) for p in (finished_run / "checkpoints").iterdir()}
    result = run_cli(*make_args(finished_run, tmp_path))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganlab: error:") and words in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert {p: sha(p) for p in (finished_run / "checkpoints").iterdir()} == before
