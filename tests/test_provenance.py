"""A run records what it ran on (code, software, machine, command), and a resume says when that changed."""

import json
import logging
import subprocess

import pytest
import torch

from conftest import ROOT, TINY, compose_cfg, read_events
from ganlab import provenance
from ganlab.run import train


# These tests read what a run on a CPU records (a GPU run names the GPU as its device, and its CPU
# is recorded but not compared on resume).
ON_CPU = [*TINY, "train.device=cpu", "train.lr_schedule=constant"]  # (an extended run keeps its rates: no word on them)


def processes(run_dir):
    return json.loads((run_dir / "environment.json").read_text())["processes"]


def git(*args):
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def test_a_run_records_what_it_ran_on_and_each_resume_adds_itself(tmp_path, caplog):
    run_dir = tmp_path / "run"
    train(compose_cfg(ON_CPU), run_dir=run_dir)
    (first,) = processes(run_dir)
    assert first["from_iteration"] == 0 and first["torch"] == torch.__version__
    assert first["threads"] == torch.get_num_threads() and first["device"] == "cpu"
    if (ROOT / ".git").exists():  # a checkout (CI's is a clone): the commit the code is at, edited or not
        assert first["code"]["commit"] == git("rev-parse", "HEAD").strip()
        new_code = git("ls-files", "--others", "--exclude-standard", "--", *provenance.CODE)
        assert first["code"]["dirty"] == bool(git("diff", "HEAD", "--no-ext-diff") or new_code)

    with caplog.at_level(logging.WARNING, logger="ganlab"):
        train(compose_cfg([*ON_CPU, "train.iterations=60", f"resume={run_dir}"]))
    assert [p["from_iteration"] for p in processes(run_dir)] == [0, 40]
    assert not caplog.text  # the same code and software: nothing to say
    # TensorBoard's Text tab: each process's entry and the run's config, at the iteration it started from
    texts = read_events(run_dir).Tensors("run/text_summary")
    assert [t.step for t in texts] == [0, 40]
    shown = texts[-1].tensor_proto.string_val[0].decode()
    assert f"torch {torch.__version__}" in shown and "at iteration 40" in shown and "    train:\n" in shown
    # Nothing left to do: not a process of the run
    train(compose_cfg([*ON_CPU, "train.iterations=60", f"resume={run_dir}"]))
    assert len(processes(run_dir)) == 2

    # The run as if started under another torch: the next resume says so, and goes on
    as_if = [first | {"torch": "1.0.0"}, *processes(run_dir)[1:]]
    (run_dir / "environment.json").write_text(json.dumps({"processes": as_if}))
    with caplog.at_level(logging.WARNING, logger="ganlab"):
        train(compose_cfg([*ON_CPU, "train.iterations=80", f"resume={run_dir}"]))
    assert f"(torch 1.0.0 -> torch {torch.__version__})" in caplog.text and "bit for bit" in caplog.text
    assert json.loads((run_dir / "metrics.json").read_text())["final"]["iteration"] == 80
    assert provenance.conditions(run_dir).startswith("ganlab ") and \
        f"torch 1.0.0, cpu, {torch.get_num_threads()} thread" in provenance.conditions(run_dir)
    assert "; from iteration 40: ganlab" in provenance.conditions(run_dir)


def test_a_resume_on_another_cpu_says_so(tmp_path, caplog):
    """Two CPUs compute the same float32 run differently (their kernels differ): part of the record."""
    run_dir = tmp_path / "run"
    train(compose_cfg(ON_CPU), run_dir=run_dir)
    (first,) = processes(run_dir)
    here = provenance.cpu_model()
    assert first["cpu"] == here and torch.backends.cpu.get_cpu_capability() in here
    (run_dir / "environment.json").write_text(json.dumps({"processes": [first | {"cpu": "Other CPU (AVX2)"}]}))
    with caplog.at_level(logging.WARNING, logger="ganlab"):
        train(compose_cfg([*ON_CPU, "train.iterations=60", f"resume={run_dir}"]))
    assert f"(Other CPU (AVX2) -> {here})" in caplog.text
    threads = provenance.describe("threads", first["threads"])  # "1 thread" on a one-core machine
    assert provenance.conditions(run_dir).endswith(f"{threads}, {here}")
    assert f"{threads}, Other CPU (AVX2); from iteration 40" in provenance.conditions(run_dir)


def test_a_population_records_it_for_itself_and_for_each_copy(tmp_path):
    population = tmp_path / "population"
    train(compose_cfg([*TINY, "train.population=2"]), run_dir=population)
    for run_dir in (population, population / "seed_0", population / "seed_1"):
        (entry,) = processes(run_dir)
        assert entry["torch"] == torch.__version__ and entry["from_iteration"] == 0
    for copy in ("seed_0", "seed_1"):  # each copy's TensorBoard run has its own text, with its own seed
        (shown,) = read_events(population / copy).Tensors("run/text_summary")
        assert f"    seed: {copy[5:]}\n" in shown.tensor_proto.string_val[0].decode()


@pytest.mark.parametrize("saved", ["", "{not json", '{"processes": 3}'])
def test_an_unreadable_record_is_started_again_not_a_crash(tmp_path, saved):
    """A run that an older ganlab started has none; a damaged one is replaced."""
    run_dir = tmp_path / "run"
    train(compose_cfg(TINY), run_dir=run_dir)
    if saved:
        (run_dir / "environment.json").write_text(saved)
    else:
        (run_dir / "environment.json").unlink()
    train(compose_cfg([*TINY, "train.iterations=60", f"resume={run_dir}"]))
    assert [p["from_iteration"] for p in processes(run_dir)] == [40]


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs ganlab's git checkout")
def test_new_code_git_does_not_track_yet_counts_as_a_change():
    """A new module or config changes what runs compute before anyone commits it."""
    before = provenance.code_version.__wrapped__()
    new_file = ROOT / "conf" / "zz_untracked_by_test.yaml"
    try:
        new_file.write_text("a: 1\n")
        first = provenance.code_version.__wrapped__()
        new_file.write_text("a: 2\n")
        second = provenance.code_version.__wrapped__()
    finally:
        new_file.unlink()
    assert first["dirty"] and first["untracked"] == sorted([*before.get("untracked", []), "conf/zz_untracked_by_test.yaml"])
    assert first["diff_sha1"] != second["diff_sha1"] != before.get("diff_sha1")
    assert provenance.code_version.__wrapped__() == before
