"""Short real trainings, read back from the files a user would look at."""

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, TINY, compose_cfg, read_events, run_cli
from ganlab import checkpoint
from ganlab.config import ConfigError, validate
from ganlab.sweep import usable_cores

SCALARS = {"loss/d", "loss/g", "d_out/real", "d_out/fake",
           "eval/mean", "eval/std", "eval/ks", "eval/w1"}
HISTOGRAMS = {"real", "generated", "noise"}


def test_run_writes_tensorboard_checkpoint_and_metrics(train_tiny):
    run_dir = train_tiny()
    events = read_events(run_dir)
    tags = events.Tags()
    assert SCALARS <= set(tags["scalars"])
    assert HISTOGRAMS <= set(tags["histograms"])
    assert "histograms" in tags["images"]
    assert [e.step for e in events.Scalars("eval/ks")] == [20, 40]
    assert [e.step for e in events.Scalars("loss/d")] == [10, 20, 30, 40]
    image = events.Images("histograms")[-1]
    assert image.width > 100 and image.height > 100

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"iteration", "mean", "std", "ks", "w1"} <= set(metrics["final"])
    assert metrics["final"]["iteration"] == 40 and len(metrics["history"]) == 2
    assert metrics["final"]["ks"] == events.Scalars("eval/ks")[-1].value or \
        abs(metrics["final"]["ks"] - events.Scalars("eval/ks")[-1].value) < 1e-6

    state = checkpoint.load(run_dir / "checkpoints" / "last.pt")
    assert state["iteration"] == 40
    assert (run_dir / "config.yaml").exists()


def test_learning_rates_are_logged_as_the_schedule_moves_them(train_tiny):
    events = read_events(train_tiny("train.lr_schedule=linear", "optimizer.d.lr=0.004", "optimizer.g.lr=0.001"))
    for net, lr in (("d", 0.004), ("g", 0.001)):
        logged = events.Scalars(f"lr/{net}")
        assert [e.step for e in logged] == [10, 20, 30, 40]
        # the rate from that iteration on: annealed linearly to 0 at the last of 40
        assert [e.value for e in logged] == pytest.approx([lr * (1 - s / 40) for s in (10, 20, 30, 40)], abs=1e-9)


def test_same_seed_same_metrics_other_seed_other_metrics(train_tiny):
    a = json.loads((train_tiny("seed=3", name="a") / "metrics.json").read_text())
    b = json.loads((train_tiny("seed=3", name="b") / "metrics.json").read_text())
    c = json.loads((train_tiny("seed=4", name="c") / "metrics.json").read_text())
    assert a == b
    assert a != c


def test_seed_recipe_and_options_train(train_tiny):
    # (the compiled path the preset turns on is tested in test_functional.py)
    for i, overrides in enumerate([("experiment=seed_normal", "train.compile=false") + tuple(TINY),
                                   ("optimizer=sgd_nesterov", "train.loss=lsgan", "train.d_steps=2"),
                                   ("train.loss=hinge", "train.g_steps=2", "model.d_features=decorate")]):
        run_dir = train_tiny(*overrides, name=f"r{i}")
        final = json.loads((run_dir / "metrics.json").read_text())["final"]
        assert all(torch.isfinite(torch.tensor(v)) for v in final.values())


def test_more_threads_than_cores_is_a_warning(train_tiny, caplog):
    """Threads beyond the cores only wait on each other: 2-4x slower on 2 cores (experiments/README.md)."""
    cores, before = usable_cores(), torch.get_num_threads()
    try:
        with caplog.at_level("WARNING", logger="ganlab"):
            train_tiny(f"train.threads={cores}", name="fits")
            assert "train.threads" not in caplog.text
            train_tiny(f"train.threads={cores + 1}", name="too_many")
    finally:
        torch.set_num_threads(before)
    assert f"train.threads={cores + 1} is more than the {cores} core" in caplog.text  # (core or cores)


def test_train_py_runs_from_the_command_line(tmp_path):
    started = time.perf_counter()
    result = run_cli(*TINY, f"hydra.run.dir={tmp_path}")
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert 0.5 < timing["startup_s"] < seconds - timing["wall_time_s"]  # imports and set-up, from the process's start
    assert (tmp_path / "metrics.json").exists() and (tmp_path / "checkpoints" / "last.pt").exists()
    assert "final:" in result.stdout + result.stderr
    # Complete after the process has exited (train.py skips the garbage collection of Python's
    # shutdown): the log file's last line and the last evaluation in TensorBoard.
    assert "final:" in (tmp_path / "train.log").read_text().strip().splitlines()[-1]
    assert read_events(tmp_path).Scalars("eval/ks")[-1].step == 40
    # The same command again would write over this run: refused before Hydra touches the directory
    kept = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    again = run_cli(*TINY, "seed=1", f"hydra.run.dir={tmp_path}")
    assert again.returncode == 2 and again.stderr.strip().splitlines() == [
        f"ganlab: error: {tmp_path} already holds a run (checkpoints/last.pt); continue it with "
        f"resume={tmp_path} (a sweep: its command plus resume=auto), or write this one elsewhere "
        "(hydra.run.dir=DIR; hydra.sweep.dir=DIR with -m)"]
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == kept
    # ... but printing that command's config writes nothing, so it is not refused
    shown = run_cli(*TINY, "seed=1", f"hydra.run.dir={tmp_path}", "--cfg", "job")
    assert shown.returncode == 0 and "seed: 1" in shown.stdout, shown.stderr
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == kept


def test_a_runs_saved_config_reruns_it_as_hydras_users_do_and_through_the_python_api(tmp_path):
    """`--config-path RUN/.hydra --config-name config`: the run's composed config without its
    schemas, which stopped the run with "AttributeError: 'dict' object has no attribute
    'lr_schedule'"; so did run.train(OmegaConf.load(RUN/config.yaml))."""
    from omegaconf import OmegaConf

    from ganlab.run import train

    first = run_cli(*TINY, "seed=3", f"hydra.run.dir={tmp_path / 'first'}")
    assert first.returncode == 0, first.stderr
    final = json.loads((tmp_path / "first" / "metrics.json").read_text())["final"]
    again = run_cli("--config-path", str(tmp_path / "first" / ".hydra"), "--config-name", "config",
                    f"hydra.run.dir={tmp_path / 'again'}")
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "again" / "metrics.json").read_text())["final"] == final  # seed 3, and the rest
    train(OmegaConf.load(tmp_path / "first" / "config.yaml"), run_dir=tmp_path / "api")
    assert json.loads((tmp_path / "api" / "metrics.json").read_text())["final"] == final
    changed = run_cli("--config-path", str(tmp_path / "first"), "--config-name", "config", "model.name=gan2d",
                      f"hydra.run.dir={tmp_path / 'changed'}")
    assert changed.returncode == 2 and changed.stderr.strip().splitlines() == [
        "ganlab: error: model.name='gan2d' is no model of ganlab's; the config needs one of conv, gan1d"]


def folder_no_one_can_write(path):
    """A folder this process cannot write to, or None: read-only permissions, and where those do
    not bind (root), the immutable flag (chattr +i), which does."""
    path.mkdir()
    path.chmod(0o500)
    if os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        return None
    return path


def test_a_compile_cache_pytorch_cannot_make_or_write_is_one_line_naming_it(tmp_path):
    """PyTorch makes it (TORCHINDUCTOR_CACHE_DIR) as an optimizer's first step imports its
    compiler: every run stopped with "cannot write ...; choose a writable directory with
    hydra.run.dir=DIR", and a compiled one where it could not write there with Inductor's traceback."""
    (tmp_path / "file").write_text("")
    unmakeable = tmp_path / "file" / "cache"
    result = run_cli(*TINY, f"hydra.run.dir={tmp_path / 'run'}",
                     env=os.environ | {"TORCHINDUCTOR_CACHE_DIR": str(unmakeable)})
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"ganlab: error: PyTorch cannot make its compile cache {unmakeable} (Not a directory), which it needs even "
        "without train.compile; point TORCHINDUCTOR_CACHE_DIR at a folder you can write: "
        "TORCHINDUCTOR_CACHE_DIR=$HOME/.cache/torchinductor python train.py ..."], result.stderr
    read_only = folder_no_one_can_write(tmp_path / "read_only")
    if read_only is None:
        pytest.skip("no folder this process cannot write to (root without chattr)")
    try:
        env = os.environ | {"TORCHINDUCTOR_CACHE_DIR": str(read_only)}
        plain = run_cli(*TINY, f"hydra.run.dir={tmp_path / 'plain'}", env=env)
        assert plain.returncode == 0, plain.stderr  # (it writes nothing there)
        compiled = run_cli(*TINY, "train.compile=true", f"hydra.run.dir={tmp_path / 'compiled'}", env=env)
        lines = compiled.stderr.strip().splitlines()
        assert compiled.returncode == 2 and len(lines) == 1, compiled.stderr
        assert lines[0].startswith(f"ganlab: error: PyTorch cannot write its compile cache {read_only} (") and \
            lines[0].endswith("where train.compile=true keeps its kernels; point TORCHINDUCTOR_CACHE_DIR at a folder "
                              "you can write: TORCHINDUCTOR_CACHE_DIR=$HOME/.cache/torchinductor python train.py ..., "
                              "or drop train.compile")
    finally:
        subprocess.run(["chattr", "-i", str(read_only)], capture_output=True)
        read_only.chmod(0o700)


def test_a_run_and_a_sweep_work_without_posix_only_signals(tmp_path):
    # Windows has no SIGHUP, SIGALRM or setitimer: ganlab failed to import there (errors.STOP_SIGNALS)
    without = ("import runpy, signal, sys\n"
               "for name in ('SIGHUP', 'SIGALRM', 'setitimer', 'ITIMER_REAL'):\n"
               "    delattr(signal, name)\n"
               f"sys.argv[0] = {str(ROOT / 'train.py')!r}\n"
               "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    for args in ([f"hydra.run.dir={tmp_path / 'run'}"], ["-m", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}"]):
        result = subprocess.run([sys.executable, "-c", without, *args, *TINY], cwd=tmp_path,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert (tmp_path / "run" / "metrics.json").exists() and (tmp_path / "sweep" / "summary.md").exists()


@pytest.mark.parametrize("preset", ["dataset=normal", "dataset=mnist", "experiment=seed_normal",
                                    "experiment=seed_mnist", "experiment=mnist_cpu"])
def test_debug_fast_shortens_any_recipe_or_preset(preset):
    t = compose_cfg([preset, "debug=fast"]).train
    assert (t.iterations, t.epochs, t.eval_every, t.eval_every_epochs, t.checkpoint_every) == (6, 0, 3, 0, 3)
    validate(compose_cfg(["debug=fast", preset]))  # the order on the command line does not matter


def test_debug_fast_runs_every_periodic_step_in_seconds(tmp_path):
    """The book's MNIST program (100 epochs) as a user checks it before the long run."""
    result = run_cli("debug=fast", "experiment=seed_mnist", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert [h["iteration"] for h in history] == [3, 6]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "best.pt", "iter_00000003.pt", "iter_00000006.pt", "last.pt"]
    events = read_events(tmp_path)
    assert [e.step for e in events.Scalars("loss/d")] == [1, 2, 3, 4, 5, 6]
    assert [e.step for e in events.Images("samples")] == [3, 6]
    assert (tmp_path / "generator.pt").exists() and len((tmp_path / "losses.csv").read_text().splitlines()) == 7


@pytest.mark.parametrize("triton_loaded", [False, True])
def test_the_exit_freezes_the_collector_only_where_triton_is_not_loaded(triton_loaded):
    """Frozen, Python's shutdown skips a 1-2 s collection; but triton 3.9 (torch 2.15's CUDA
    builds) reports every one of its objects a frozen collector keeps alive as a leak, ~30 lines on
    stderr after the run's one line. A stand-in module named triton is enough to choose the exit."""
    stand_in = "sys.modules['triton'] = types.ModuleType('triton')" if triton_loaded else "sys.modules.pop('triton', None)"
    code = (f"import gc, sys, types; sys.path.insert(0, {str(ROOT)!r}); from train import skip_collection_at_exit; "
            f"gc.freeze(); {stand_in}; skip_collection_at_exit(); print(gc.get_freeze_count() > 0, gc.isenabled())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    frozen, collecting = result.stdout.split()
    assert frozen == str(not triton_loaded) and collecting == str(not triton_loaded)


def test_a_new_run_never_writes_into_an_earlier_ones_directory(train_tiny):
    run_dir = train_tiny(name="run")  # in-process, as each job of a sweep runs
    with pytest.raises(checkpoint.CheckpointError, match="already holds a run"):
        train_tiny(name="run")
    for name in ("metrics.json", "checkpoints"):  # a run that crashed before its first checkpoint
        (run_dir / name).rename(run_dir.parent / name)
    with pytest.raises(checkpoint.CheckpointError, match=r"already holds a run \(events.out.tfevents.*remove it"):
        train_tiny(name="run")


def test_a_run_without_hydra_run_dir_writes_under_outputs(tmp_path):
    result = run_cli(*TINY, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = tmp_path.glob("outputs/*/*")
    assert (run_dir / "metrics.json").exists() and (run_dir / ".hydra" / "config.yaml").exists()


def test_runs_started_in_the_same_second_get_directories_of_their_own(tmp_path):
    # Another run has just made outputs/DATE/TIME, for this second and the next two minutes.
    taken = {tmp_path / "outputs" / time.strftime("%Y-%m-%d/%H-%M-%S", time.localtime(time.time() + s))
             for s in range(120)}
    for path in taken:
        path.mkdir(parents=True)
    result = run_cli(*TINY, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (path.parent for path in tmp_path.glob("outputs/*/*/metrics.json"))
    assert run_dir.name.endswith("_1") and run_dir.parent / run_dir.name[:-2] in taken
    assert not any(any(path.iterdir()) for path in taken)  # the other runs' directories: untouched


def test_a_new_run_directory_is_claimed_once_per_process(tmp_path, monkeypatch):
    from ganlab.config import resumed_or_fresh

    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs" / "T").mkdir(parents=True)  # another process's
    assert resumed_or_fresh(None, "outputs/T") == "outputs/T_1" and (tmp_path / "outputs" / "T_1").is_dir()
    assert resumed_or_fresh(None, "outputs/T") == "outputs/T_1"  # Hydra may resolve it again
    assert resumed_or_fresh("runs/old", "outputs/T") == "runs/old"  # resume=DIR continues in DIR
    with pytest.raises(ConfigError, match="resume=auto continues the run in hydra.run.dir, and none is given"):
        resumed_or_fresh("auto", "outputs/T")  # (a new directory: nothing to continue)


def test_printing_the_resolved_config_leaves_no_run_directory(tmp_path):
    # Resolving hydra.run.dir makes it (the claim above); a command that runs nothing removes it
    # again, with the parents it made, and leaves a folder that was there before.
    for before in ([], ["outputs"]):
        for name in before:
            (tmp_path / name).mkdir()
        result = run_cli("--cfg", "all", "--resolve", cwd=tmp_path)
        assert result.returncode == 0 and "run:\n    dir: outputs/" in result.stdout, result.stderr
        assert sorted(p.name for p in tmp_path.rglob("*")) == before
