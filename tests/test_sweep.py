"""Sweeps that can be compared, and runs that outgrow one process (real subprocess runs)."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from omegaconf import OmegaConf

from conftest import MNIST_TINY, ROOT, TINY, compose_cfg, read_events, run_cli
from ganlab.distributed import Placement
from ganlab.run import device_advice
from ganlab.summary import rank_test, welch_interval
from ganlab.sweep_summary import write_summary

SWEEP_TINY = [a for a in TINY if not a.startswith("train.progress")] + ["train.progress=false"]
MISSING_DEVICE = "mps" if torch.cuda.is_available() else "cuda"  # (a Mac has no CUDA, a GPU machine no MPS)


def job_dirs(sweep_dir):
    return sorted(p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml"))


def hparams_of(run_dir):
    """The HParams session data TensorBoard's dashboard reads, from the run's own event file."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = read_events(run_dir)
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    return {k: v.number_value or v.string_value or v.bool_value
            for k, v in start.session_start_info.hparams.items()}, events


def tensorboard_experiment(logdir):
    """The HParams dashboard's columns, as TensorBoard's backend computes them for `logdir`."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment

    runs = plugin_event_multiplexer.EventMultiplexer()
    runs.AddRunsFromDirectory(str(logdir))
    runs.Reload()
    provider = data_provider.MultiplexerDataProvider(runs, str(logdir))
    backend = backend_context.Context(base_plugin.TBContext(data_provider=provider))
    return get_experiment.Handler(context.RequestContext(), backend, "", api_pb2.GetExperimentRequest()).run()


def hparams_sessions(logdir):
    """Each run's status in the HParams dashboard, as TensorBoard's backend lists its sessions."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups

    runs = plugin_event_multiplexer.EventMultiplexer()
    runs.AddRunsFromDirectory(str(logdir))
    runs.Reload()
    backend = backend_context.Context(base_plugin.TBContext(
        data_provider=data_provider.MultiplexerDataProvider(runs, str(logdir))))
    request = api_pb2.ListSessionGroupsRequest(allowed_statuses=api_pb2.Status.values(), slice_size=1000)
    groups = list_session_groups.Handler(context.RequestContext(), backend, "", request).run().session_groups
    return {session.name: api_pb2.Status.Name(session.status) for group in groups for session in group.sessions}


def test_multirun_names_jobs_writes_hparams_and_a_summary(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli("-m", "optimizer=adam,sgd_nesterov", "train.d_steps=1,2", "seed=0,1", *SWEEP_TINY,
                     f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    jobs = job_dirs(sweep)
    assert len(jobs) == 8
    assert any({"optimizer=sgd_nesterov", "seed=1", "train.d_steps=2"} <= set(j.name.split(",")) for j in jobs)
    for job in jobs:
        assert job.parent == sweep and not list(job.glob("*/events.out.tfevents.*"))  # no extra subfolder
        hparams, events = hparams_of(job)
        assert hparams["seed"] in (0, 1) and hparams["optimizer.d.name"] in ("adam", "sgd")
        assert "final/ks" in events.Tags()["scalars"] and "best/ks" in events.Tags()["scalars"]
    # TensorBoard's HParams table: the settings the jobs differ in come first (it ticks five)
    values = {}
    for job in jobs:
        for key, value in hparams_of(job)[0].items():
            values.setdefault(key, set()).add(value)
    varied = {key for key, seen in values.items() if len(seen) > 1}
    assert {"seed", "train.d_steps", "optimizer.d.name"} <= varied
    columns = tensorboard_experiment(sweep).hparam_infos
    assert [c.name for c in columns[:len(varied)]] == sorted(varied) and all(c.differs for c in columns[:len(varied)])
    assert not any(c.differs for c in columns[len(varied):])
    assert {"final/ks", "best/ks"} <= {m.name.tag for m in tensorboard_experiment(sweep).metric_infos}

    with open(sweep / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)
    ks = [float(r["ks"]) for r in rows]
    assert ks == sorted(ks)
    for row in rows:  # best.pt's score beside the final one
        history = json.loads((sweep / row["job"] / "metrics.json").read_text())["history"]
        assert float(row["best_ks"]) == pytest.approx(min(h["ks"] for h in history), rel=1e-6)
    with open(sweep / "summary_seeds.csv") as f:
        settings = list(csv.DictReader(f))
    assert len(settings) == 4 and all(s["seeds"] == "2" for s in settings)
    # Each setting against the best one: the difference of their mean KS with Welch's interval over the seeds
    assert settings[0]["ks - best (95%)"] == "best"
    ks_of = {}
    for r in rows:
        ks_of.setdefault(" ".join(o for o in r["overrides"].split() if not o.startswith("seed=")), []).append(float(r["ks"]))
    for setting in settings[1:]:
        best, other = ks_of[settings[0]["setting"]], ks_of[setting["setting"]]
        (diff, lo, hi), p = welch_interval(best, other), rank_test(best, other)[1]
        tie = " tie" if lo <= 0 <= hi and p >= 0.05 else ""
        assert setting["ks - best (95%)"] == f"{diff:+.4g} [{lo:.4g}, {hi:.4g}], ranks p {p:.2g}{tie}"
        assert diff >= 0
    assert "Seeds aggregated" in (sweep / "summary.md").read_text()
    # What the jobs ran on: one line when they all ran on the same, else job by job
    ran_on = {r["ran_on"] for r in rows}
    assert len(ran_on) == 1 and f"torch {torch.__version__}" in ran_on.pop()
    assert "Every job ran on ganlab " in (sweep / "summary.md").read_text()
    environment = sweep / rows[0]["job"] / "environment.json"
    record = json.loads(environment.read_text())
    record["processes"][0]["torch"] = "1.0.0"
    environment.write_text(json.dumps(record))
    write_summary(sweep, "ks")
    text = (sweep / "summary.md").read_text()
    assert "did not all run on the same code, software and machine" in text
    assert f"| {rows[0]['job']} | ganlab " in text and "torch 1.0.0" in text


def test_a_sweep_over_presets_gives_each_its_own_directory_and_summary_table(tmp_path):
    # (the job names once left experiment= out, and the second preset found the first one's run)
    sweep = tmp_path / "sweep"
    result = run_cli("-m", "experiment=seed_normal,seed_mnist", "seed=0,1", "debug=fast", "train.compile=false",
                     f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    assert [j.name for j in job_dirs(sweep)] == [f"debug=fast,experiment={preset},seed={seed},train.compile=False"
                                                 for preset in ("seed_mnist", "seed_normal") for seed in (0, 1)]
    assert [json.loads((j / "metrics.json").read_text())["final"]["iteration"] for j in job_dirs(sweep)] == [6] * 4
    # Each job is judged by its dataset's metric (what it returned to the sweeper): a table each.
    # (Before, the summary looked for KS in the MNIST jobs: a KeyError, and no summary.)
    assert "raised" not in result.stderr
    text = (sweep / "summary.md").read_text()
    assert text.index("## Jobs judged by ks (lower is better)") < text.index("## Jobs judged by fd (lower is better)")
    with open(sweep / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    judged = [("ks" if "seed_normal" in r["job"] else "fd") for r in rows]
    assert judged == ["ks", "ks", "fd", "fd"] and all(r["status"] == "ok" for r in rows)
    for metric, pair in (("ks", rows[:2]), ("fd", rows[2:])):
        assert float(pair[0][metric]) <= float(pair[1][metric]) and all(r[f"best_{metric}"] for r in pair)
    with open(sweep / "summary_seeds.csv") as f:
        settings = list(csv.DictReader(f))
    assert [(s["ks - best (95%)"], s["fd - best (95%)"], s["seeds"]) for s in settings] == [("best", "", "2"),
                                                                                         ("", "best", "2")]


def test_an_interrupted_sweep_finishes_with_the_same_command_plus_resume_auto(tmp_path):
    args = ["-m", *SWEEP_TINY, "train.checkpoint_every=10", "train.keep_checkpoints=10"]
    never_stopped, stopped = tmp_path / "never_stopped", tmp_path / "stopped"
    assert run_cli(*args, "seed=0,1", f"hydra.sweep.dir={never_stopped}").returncode == 0
    # The sweep "killed" in its second job, right after that job's checkpoint at iteration 20
    shutil.copytree(never_stopped, stopped)
    job = {next(o for o in j.name.split(",") if o.startswith("seed=")): j.name for j in job_dirs(stopped)}
    (stopped / "summary.csv").unlink()
    (stopped / job["seed=1"] / "metrics.json").unlink()
    checkpoints = stopped / job["seed=1"] / "checkpoints"
    shutil.copy(checkpoints / "iter_00000020.pt", checkpoints / "last.pt")
    finished = (stopped / job["seed=0"] / "checkpoints" / "last.pt").read_bytes()
    # Run again, one seed more: the finished job is left as it is, the stopped one continues, the new one runs
    result = run_cli(*args, "seed=0,1,2", "resume=auto", f"hydra.sweep.dir={stopped}")
    assert result.returncode == 0, result.stderr
    assert "nothing left to do" in result.stderr + result.stdout
    assert (stopped / job["seed=0"] / "checkpoints" / "last.pt").read_bytes() == finished
    assert (stopped / job["seed=1"] / "metrics.json").read_bytes() == \
        (never_stopped / job["seed=1"] / "metrics.json").read_bytes()
    assert len(job_dirs(stopped)) == 3 and not any("resume" in j.name for j in job_dirs(stopped))
    with open(stopped / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(r["status"] == "ok" and "resume" not in r["overrides"] for r in rows)
    # A single run the same way: resume=auto starts it, and continues (here: finds nothing left) after
    for _ in range(2):
        result = run_cli(*TINY, "resume=auto", f"hydra.run.dir={tmp_path / 'single'}")
        assert result.returncode == 0, result.stderr
    assert "nothing left to do" in result.stderr + result.stdout


def test_a_sweep_of_populations_shows_each_mean_beside_its_spread(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli("-m", "optimizer=adam,adam_fast", "train.population=2", *SWEEP_TINY, f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    with open(sweep / "summary.csv") as f:
        reader = csv.DictReader(f)
        rows, columns = list(reader), reader.fieldnames
    assert [r["copies"] for r in rows] == ["2", "2"]
    assert columns[:11] == ["overrides", "job", "status", "copies", "failed", "best_ks", "best_ks_std",
                            "ks", "ks_std", "ks_real", "ks_real_std"]
    for row in rows:  # the job's row is its population's mean and spread over the copies
        metrics = [json.loads(p.read_text()) for p in (sweep / row["job"]).glob("seed_*/metrics.json")]
        for key, copies in (("ks", [m["final"]["ks"] for m in metrics]), ("best_ks", [m["best"]["ks"] for m in metrics])):
            assert len(copies) == 2 and float(row[key]) == pytest.approx(sum(copies) / 2, rel=1e-3)
            assert float(row[f"{key}_std"]) == pytest.approx(abs(copies[0] - copies[1]) / 2 ** 0.5, rel=1e-3)
    # no two jobs differ in their seed alone: nothing to aggregate, and the summary says where the spread is
    assert not (sweep / "summary_seeds.csv").exists()
    assert "Each job is a population (`train.population`): its row above is its copies' mean, with their " \
           "standard deviation beside it (`ks_std`, ...)." in (sweep / "summary.md").read_text()


def test_a_diverged_job_is_a_failed_row_not_a_crashed_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli("-m", "optimizer=sgd_nesterov", "train.loss=lsgan", "train.r1_gamma=0",
                     "train.lr_schedule=constant", "optimizer.g.lr=1", "optimizer.d.lr=1,0.0005", "seed=0,1",
                     *SWEEP_TINY, f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    with open(sweep / "summary.csv") as f:
        status = {r["overrides"]: r["status"] for r in csv.DictReader(f)}
    assert len(status) == 4
    assert any(s.startswith("diverged:") for s in status.values()), status
    # The seed aggregate counts each setting's failed jobs, which its means leave out: before, a
    # setting that failed on some seeds read as well as one that failed on none, and one that
    # failed on every seed was not there at all
    with open(sweep / "summary_seeds.csv") as f:
        aggregate = {r["setting"].split("optimizer.d.lr=")[1].split()[0]: r for r in csv.DictReader(f)}
    for lr, row in aggregate.items():
        failed = sum(s != "ok" for o, s in status.items() if f"optimizer.d.lr={lr} " in o + " ")
        assert (int(row["seeds"]), int(row["seeds_failed"])) == (2 - failed, failed), row
        assert (row["ks_mean"] == "") == (failed == 2)
        assert failed < 2 or row["ks - best (95%)"] == "(every seed failed)"
    assert set(aggregate) == {"1", "0.0005"}
    assert "`seeds_failed`: the setting's jobs" in (sweep / "summary.md").read_text()
    # TensorBoard's HParams dashboard lists every job, a diverged one as a failure (it was not there)
    with open(sweep / "summary.csv") as f:
        expected = {r["job"]: "STATUS_SUCCESS" if r["status"] == "ok" else "STATUS_FAILURE" for r in csv.DictReader(f)}
    assert hparams_sessions(sweep) == expected and "STATUS_FAILURE" in expected.values()
    # Continued with resume=auto: a diverged job is a result, left as it ended (before, one that had
    # diverged before its first checkpoint stopped the sweep: "already holds a run")
    files = {path: path.read_bytes() for path in sweep.rglob("*") if path.is_file() and ".hydra" not in path.parts}
    again = run_cli("-m", "optimizer=sgd_nesterov", "train.loss=lsgan", "train.r1_gamma=0",
                    "train.lr_schedule=constant", "optimizer.g.lr=1", "optimizer.d.lr=1,0.0005", "seed=0,1",
                    *SWEEP_TINY, f"hydra.sweep.dir={sweep}", "resume=auto")
    assert again.returncode == 0, again.stderr
    assert "ended in an earlier process (diverged: the losses became NaN" in again.stdout + again.stderr
    kept = {path: files[path] for path in files if path.name not in ("train.log", "multirun.yaml")}
    assert {path: path.read_bytes() for path in kept} == kept


def test_a_sweep_stops_where_another_sweep_made_its_default_root_in_the_same_second(tmp_path):
    roots = {tmp_path / "multirun" / time.strftime("%Y-%m-%d/%H-%M-%S", time.localtime(time.time() + s))
             for s in range(120)}  # as another sweep started now would have made them
    for root in roots:
        root.mkdir(parents=True)
    result = run_cli("-m", "seed=0,1", *SWEEP_TINY, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "was made by another sweep started in the same second" in lines[0] and "hydra.sweep.dir=DIR" in lines[0]
    assert not any(any(root.iterdir()) for root in roots)  # no job ran, nothing written there


def test_a_bad_value_in_a_later_job_stops_the_sweep_before_any_job_runs(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli("-m", "optimizer=adam,sgd_nesterov", "optimizer.d.momentum=0.9,0", "optimizer.d.nesterov=true",
                     "optimizer.d.name=sgd", *SWEEP_TINY, f"hydra.sweep.dir={sweep}")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("ganlab: error: sweep job #1 (optimizer=adam optimizer.d.momentum=0 ")
    assert "optimizer.d.momentum=0.0 must be > 0 with nesterov=true" in lines[0] and "no job has run" in lines[0]
    assert not sweep.exists()
    # Under the default root, multirun/DATE/TIME: it was made before the check, and left empty
    result = run_cli("-m", "optimizer=adam,sgd_nesterov", "optimizer.d.momentum=0.9,0", "optimizer.d.nesterov=true",
                     "optimizer.d.name=sgd", *SWEEP_TINY, cwd=tmp_path)
    assert result.returncode == 2 and "no job has run" in result.stderr and not (tmp_path / "multirun").exists()


@pytest.mark.parametrize("values,words", [
    (["dataset=normal,mnist", "train.population=2"], "train.population=2 needs models without BatchNorm"),
    (["dataset=mnist", "dataset.n_train=100,10", "train.batch_size=32"],
     "train.batch_size=32 is larger than the 10 training digits"),
    ([f"train.device=cpu,{MISSING_DEVICE}"], f"train.device={MISSING_DEVICE} is not available on this machine"),
    # a job Hydra cannot compose: it stopped the sweep with its own line, after writing multirun.yaml
    (["experiment=seed_normal,seed_mnist", "dataset=normal"], "experiment=seed_mnist sets dataset.shuffle, which "
                                                             "dataset=normal does not have"),
])
def test_a_value_that_only_the_job_could_check_stops_the_sweep_before_any_job_runs(tmp_path, values, words):
    """Before, these were checked in the job (with the models built, or the data read): the first
    job trained, then the sweep ended at the second."""
    sweep = tmp_path / "sweep"
    result = run_cli("-m", *SWEEP_TINY, *values, f"hydra.sweep.dir={sweep}")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("ganlab: error: sweep job #1 (") and words in lines[0], lines[0]
    assert lines[0].endswith("no job has run") and not sweep.exists()


@pytest.mark.parametrize("values,words", [
    (["seed=0,1,0"], "sweep jobs #0 and #2 (seed=0 "),  # a value given twice
    (["seed=0", "train.progress=true,false"], "sweep jobs #0 and #1 (seed=0 train.progress=False "),  # a key names leave out
])
def test_jobs_that_would_share_a_directory_stop_the_sweep_before_any_job_runs(tmp_path, values, words):
    """Before, the job named like an earlier one stopped on that one's run after it had trained,
    and the sweep ended there, without the jobs after it or a summary."""
    sweep = tmp_path / "sweep"
    result = run_cli("-m", *values, *(a for a in SWEEP_TINY if a != "train.progress=false"), f"hydra.sweep.dir={sweep}")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"ganlab: error: {words}") and "would share the directory" in lines[0], lines[0]
    assert lines[0].endswith("no job has run") and not sweep.exists()


def test_populations_of_one_setting_with_overlapping_seeds_stop_the_sweep_before_any_job_runs(tmp_path):
    """Before, `-m seed=0,1 train.population=2` trained seed 1 twice, and the summary's seed
    aggregate took the two jobs for independent: its spread too small."""
    sweep = tmp_path / "sweep"
    result = run_cli("-m", "seed=0,1", "train.population=2", *SWEEP_TINY, f"hydra.sweep.dir={sweep}")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("ganlab: error: sweep jobs #0 and #1 (seed=1 train.population=2 ") and lines[0].endswith(
        ") train seeds 0-1 and 1-2 of one setting: copies of the one are copies of the other, trained twice and "
        "counted as independent in the summary; step the seeds by the population (seed=0,2,4), or train one larger "
        "population; no job has run"), lines[0]
    assert not sweep.exists()


@pytest.mark.parametrize("count,fix", [
    (["hydra/launcher=joblib", "hydra.launcher.n_jobs=0"], "how many jobs run at once"),  # joblib's ValueError
    (["hparams_search=normal_optuna", "hydra.sweeper.n_trials=0"], "how many settings the search tries"),  # Optuna's
    (["hparams_search=normal_optuna", "hydra.sweeper.n_jobs=0"], "how many trials run at once"),  # for ever
], ids=["joblib n_jobs=0", "optuna n_trials=0", "optuna n_jobs=0"])
def test_a_sweep_told_to_run_nothing_says_so_in_one_line(tmp_path, count, fix):
    result = run_cli("-m", *count, "seed=0,1", *SWEEP_TINY, cwd=tmp_path, timeout=60)
    key, value = count[1].split("=")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"ganlab: error: {key}={value} would run nothing; give {fix} ({key}=")
    assert not (tmp_path / "multirun").exists()


def test_a_grid_sweep_over_an_interval_says_to_list_values_or_search(tmp_path):
    """Before, Hydra's line: "BasicSweeper does not support sweep type : INTERVAL_SWEEP"."""
    result = run_cli("-m", "seed=0,1", "optimizer.d.lr=tag(log,interval(0.001,0.01))", *SWEEP_TINY, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("ganlab: error: optimizer.d.lr=tag(log,interval(0.001,0.01)): interval() is a range "
                               "for a search to draw from, which a grid sweep (-m) cannot list; give the values "
                               "(optimizer.d.lr=0.001,0.003,0.01, or range(START,STOP,STEP))"), lines[0]
    assert "hparams_search=normal_optuna" in lines[0] and not (tmp_path / "multirun").exists()


@pytest.mark.skipif(shutil.which("srun") is not None, reason="a node of a SLURM cluster")
def test_the_slurm_launcher_off_a_slurm_cluster_says_so_in_one_line(tmp_path):
    """Before, submitit's traceback: 'Could not detect "srun", are you indeed on a slurm cluster?'."""
    sweep = tmp_path / "slurm"
    result = run_cli("-m", "hydra/launcher=submitit_slurm", "seed=0,1", *SWEEP_TINY, f"hydra.sweep.dir={sweep}",
                     timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and lines == [
        "ganlab: error: hydra/launcher=submitit_slurm submits the jobs to SLURM, which this machine lacks (no srun on "
        "its PATH); start the sweep on a node of the SLURM cluster, or run the jobs on this machine with "
        "hydra/launcher=joblib or submitit_local"], result.stderr
    assert not sweep.exists()


@pytest.mark.parametrize("args,plugin,extra", [
    (["hparams_search=normal_optuna"], "hydra/sweeper=optuna comes from Hydra's plugin hydra-optuna-sweeper", "sweep"),
    (["-m", "hydra/launcher=joblib", "seed=0,1"], "hydra/launcher=joblib comes from Hydra's plugin hydra-joblib-launcher",
     "sweep"),
    (["-m", "hydra/launcher=submitit_slurm", "seed=0"], "hydra-submitit-launcher", "cluster"),
], ids=["optuna", "joblib", "submitit"])
def test_a_plugin_that_is_not_installed_says_which_extra_installs_it(tmp_path, args, plugin, extra):
    """`pip install -e .` without the extras: Hydra finds no such config and says only that."""
    hidden = tmp_path / "no_plugins" / "hydra_plugins"  # a regular package ahead of the installed
    hidden.mkdir(parents=True)                           # namespace package hides every plugin
    (hidden / "__init__.py").write_text("")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hidden.parent), os.environ.get("PYTHONPATH")]))}
    result = run_cli(*args, *SWEEP_TINY, cwd=tmp_path, env=env, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("ganlab: error: ") and plugin in lines[0]
    assert lines[0].endswith(f'which is not installed; install it with ganlab\'s {extra} extra: pip install -e ".[{extra}]"')
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("copies", [[], ["train.population=2"]])
def test_optimized_metric_is_returned_to_the_optuna_sweeper(tmp_path, copies):
    """A trial that is a population returns its copies' mean: a search less led by lucky seeds."""
    sweep = tmp_path / "optuna"
    result = run_cli("hparams_search=normal_optuna", "hydra.sweeper.n_trials=3", "optimized_metric=w1",
                     *SWEEP_TINY, *copies, f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    assert "setup plugin alembic" not in result.stdout + result.stderr  # optuna's alembic's INFO lines
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    w1 = [json.loads((j / "metrics.json").read_text())["final"]["w1"] for j in job_dirs(sweep)]
    assert len(w1) == 3 and best.best_value == pytest.approx(min(w1))
    for job in job_dirs(sweep) if copies else []:
        copy_w1 = [json.loads(p.read_text())["final"]["w1"] for p in job.glob("seed_*/metrics.json")]
        assert len(copy_w1) == 2 and json.loads((job / "metrics.json").read_text())["final"]["w1"] == \
            pytest.approx(sum(copy_w1) / 2)


def test_an_optuna_search_for_a_score_maximizes_it(tmp_path):
    """The presets' direction follows optimized_metric: it was `minimize` whatever the metric, and
    `hparams_search=mnist_optuna optimized_metric=score` searched for the lowest score."""
    sweep = tmp_path / "optuna"
    result = run_cli("hparams_search=mnist_optuna", "optimized_metric=score", "hydra.sweeper.n_trials=2", *MNIST_TINY,
                     f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    score = [json.loads((j / "metrics.json").read_text())["final"]["score"] for j in job_dirs(sweep)]
    assert len(set(score)) == 2 and OmegaConf.load(sweep / "optimization_results.yaml").best_value == max(score)


@pytest.mark.parametrize("given,words", [
    (["optimized_metric=fd"], "optimized_metric='fd' is not a metric of dataset=normal; use one of ks, w1"),
    (["train.d_steps=0"], "train.d_steps=0 must be positive"),
    (["hydra.sweeper.direction=maximize"], "hydra.sweeper.direction=maximize would search for the highest ks, where a "
                                           "lower ks is better; drop hydra.sweeper.direction"),
])
def test_a_searchs_fixed_settings_are_checked_before_its_first_trial(tmp_path, given, words):
    """Before, a bad value stopped the search at its first trial, and a direction against the
    metric searched for the worst runs."""
    result = run_cli("hparams_search=normal_optuna", "hydra.sweeper.n_trials=2", *given, *SWEEP_TINY, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"ganlab: error: {words}") and lines[0].endswith("no trial has run"), lines[0]
    assert not (tmp_path / "multirun").exists()


def test_joblib_runs_jobs_in_parallel_with_a_fair_share_of_threads(tmp_path):
    sweep = tmp_path / "joblib"
    result = run_cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1", *SWEEP_TINY,
                     f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    cores = len(os.sched_getaffinity(0))
    for job in job_dirs(sweep):
        assert json.loads((job / "timing.json").read_text())["threads"] == max(1, cores // 2)
        assert "train.threads" not in (job / "train.log").read_text()  # no warning: cores // 2 each fit


def test_threads_that_add_up_to_more_than_the_cores_over_jobs_or_processes_are_a_warning(tmp_path):
    """Each job's train.threads may fit the cores while their sum does not: on 2 cores two joblib
    jobs of 2 threads trained 7-12x slower, two torchrun processes 3x (experiments/README.md)."""
    cores = len(os.sched_getaffinity(0))
    sweep = tmp_path / "joblib"
    result = run_cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1", f"train.threads={cores}",
                     *SWEEP_TINY, f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    for job in job_dirs(sweep):
        assert f"train.threads={cores} in each of 2 jobs at once (hydra.launcher.n_jobs) makes {2 * cores} threads, " \
            f"more than the {cores} core" in (job / "train.log").read_text()
    result = torchrun(2, "train.device=cpu", f"train.threads={cores}", f"hydra.run.dir={tmp_path / 'ddp'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"train.threads={cores} in each of 2 torchrun processes makes {2 * cores} threads, more than the {cores} " \
        "core" in (tmp_path / "ddp" / "train.log").read_text()


def test_submitit_local_launcher(tmp_path):
    sweep = tmp_path / "submitit"
    result = run_cli("-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5", "seed=0,1",
                     *SWEEP_TINY, f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    assert len(job_dirs(sweep)) == 2
    assert all((j / "metrics.json").exists() for j in job_dirs(sweep))


# --standalone: torchrun picks a free port, so tests running side by side (pytest -n) do not collide
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]


def torchrun(nproc: int, *args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([*TORCHRUN, f"--nproc_per_node={nproc}", str(ROOT / "train.py"), *SWEEP_TINY, *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def test_torchrun_two_processes_on_gloo(tmp_path):
    run_dir = tmp_path / "ddp"
    result = torchrun(2, "train.device=cpu", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1  # rank 0 alone writes
    assert (run_dir / "metrics.json").exists() and (run_dir / "checkpoints" / "last.pt").exists()
    timing = json.loads((run_dir / "timing.json").read_text())
    assert timing["world_size"] == 2 and timing["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)
    assert "train.threads" not in result.stdout + result.stderr  # no warning: the cores shared, as above
    assert not (tmp_path / "outputs").exists() and not (tmp_path / ".hydra").exists()
    assert "Grad strides do not match" not in result.stderr  # DDP's spurious warning for D's 1 x 50 weight
    # Extended with resume=auto: every process continues the run (before, rank 1 started it afresh while
    # rank 0 continued it, and the processes fell out of step: "Connection closed by peer")
    result = torchrun(2, "train.device=cpu", f"hydra.run.dir={run_dir}", "resume=auto", "train.iterations=60",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming" in result.stdout + result.stderr
    assert json.loads((run_dir / "metrics.json").read_text())["final"]["iteration"] == 60
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 2  # rank 0's, one a process: rank 1 writes none


def test_a_stopped_torchrun_job_stops_every_process_at_one_iteration(tmp_path):
    """torchrun hands its SIGTERM to each process, which each got at its own moment: rank 0 saved
    and stopped, and rank 1, an iteration on, died in its all-reduce ("Connection closed by peer")."""
    run_dir = tmp_path / "ddp"
    job = subprocess.Popen([*TORCHRUN, "--nproc_per_node=2",
                            str(ROOT / "train.py"), *SWEEP_TINY, "train.device=cpu", "train.iterations=1000000",
                            "train.checkpoint_every=200", f"hydra.run.dir={run_dir}"],
                           cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list((run_dir / "checkpoints").glob("iter_*.pt")) and time.monotonic() < deadline:
            time.sleep(0.2)
        job.send_signal(signal.SIGTERM)
        _, stderr = job.communicate(timeout=120)
    finally:
        job.kill()
    stopped = re.findall(r"ganlab: error: SIGTERM at iteration (\d+): checkpoint saved in ", stderr)
    assert len(stopped) == 2 and stopped[0] == stopped[1], stderr[-3000:]
    assert "Connection closed by peer" not in stderr and "[rank1]: Traceback" not in stderr
    from ganlab import checkpoint

    assert checkpoint.load(run_dir / "checkpoints" / "last.pt")["iteration"] == int(stopped[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA machine")
def test_torchrun_with_more_processes_than_gpus_says_how_many_to_start(tmp_path):
    gpus = torch.cuda.device_count()
    result = torchrun(gpus + 1, "train.device=cuda", f"hydra.run.dir={tmp_path / 'ddp'}", cwd=tmp_path)
    assert result.returncode != 0
    assert f"ganlab: error: torchrun started {gpus + 1} processes on this machine, one per GPU, but it has {gpus}; " \
        f"use --nproc_per_node={gpus}" in result.stderr


def test_device_choice(tmp_path):
    result = run_cli(*SWEEP_TINY, "train.device=cuda", f"hydra.run.dir={tmp_path / 'a'}")
    if torch.cuda.is_available():
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 2 and "train.device=cuda is not available" in result.stderr
    result = run_cli(*SWEEP_TINY, "train.device=auto", f"hydra.run.dir={tmp_path / 'b'}")
    assert result.returncode == 0, result.stderr
    # auto on a GPU machine: the 1-D GAN trains there, and the log says how to make it fast
    assert ("add train.compile=true" in result.stdout + result.stderr) == torch.cuda.is_available()


@pytest.mark.parametrize("overrides, hint", [
    ([], True),
    (["train.compile=true"], False),  # replayed as one CUDA graph (train.cuda_graph): fast on the GPU
    (["train.compile=true", "train.cuda_graph=false"], True),
    (["train.device=cuda"], False),  # asked for by name: no advice
    (["train.population=4"], False),  # the GPU was faster for 32 copies of the default recipe
    (["dataset=mnist"], False),
])
def test_auto_on_a_gpu_advises_the_cuda_graph_or_a_cpu_for_one_1d_gan(overrides, hint):
    on_gpu = Placement(torch.device("cuda"))  # where auto would put it on a GPU machine; nothing runs
    assert (device_advice(compose_cfg(overrides), on_gpu) is not None) == hint
    assert device_advice(compose_cfg(overrides), Placement(torch.device("cpu"))) is None
