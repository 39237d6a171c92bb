"""The experiment scripts: a bad override or --out is one line at once; the benchmark runs end to end
(slow: about 3 minutes);
the step profiler names Inductor's kernels (slow: a compilation of its own, up to a minute)."""

import json

import pytest

from conftest import run_cli


@pytest.mark.slow
def test_quick_benchmark_reports_every_row_from_alternating_rounds(tmp_path):
    out = tmp_path / "benchmark.json"
    result = run_cli("--quick", "--out", str(out), script="experiments/benchmark.py", timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| 1-D seed recipe, iterations/s |" in result.stdout and "32 seeds = " in result.stdout
    results = json.loads(out.read_text())
    for key in ("1d_seed_batch1", "mnist_seed_batch16", "mnist_seed_batch128"):
        row = results[key]
        assert len(row["rounds"]) == 2  # --quick: two rounds
        assert all(r[name] > 0 for r in row["rounds"] for name in ("reference", "ganlab", "ganlab_compiled"))
        assert row["speedup_reference"] == 1.0 and row["speedup_ganlab_compiled"] > 0
    assert results["mnist_seed_batch16"]["flops_per_iter"] == pytest.approx(16 * 778e6, rel=0.01)
    population = results["population_1d_seed"]
    assert len(population["rounds"]) == 2 and population["ratio_to_one_compiled"] > 1
    assert population["ratio_to_one_compiled_process"] > 0  # whole processes, start-up and exit included
    assert 0 < results["eval_log_cost_default_run"]["fraction"] < 1
    assert results["startup"]["to_first_iteration_s"] > 0
    assert results["environment"]["torch"] and results["environment"]["threads"] == results["threads"]


def test_benchmark_refuses_an_output_it_cannot_write_before_measuring(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = run_cli("--out", str(blocker / "benchmark.json"), script="experiments/benchmark.py", timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"benchmark.py: error: cannot write {blocker}")


@pytest.mark.slow
def test_profile_step_names_inductors_generated_kernels():
    result = run_cli("experiment=seed_normal", "train.compile=true", script="experiments/profile_step.py")
    assert result.returncode == 0, result.stderr[-2000:]
    assert " ms an iteration" in result.stdout
    assert "graph_0_cpp_fused_" in result.stdout  # a kernel Inductor wrote, as its own row
    assert "aten::addmm" in result.stdout  # and the library calls between the kernels


def test_experiment_scripts_answer_a_bad_override_with_one_line_that_says_why():
    result = run_cli("train.compile=maybe", script="experiments/profile_step.py", timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "profile_step.py: Error merging override train.compile=maybe (Value 'maybe' is not a valid bool (type str))"]


def test_best_vs_last_scores_every_runs_checkpoints_again(train_tiny, tmp_path):
    runs = tmp_path / "runs"
    train_tiny("seed=1", name="runs/a")
    train_tiny("seed=2", name="runs/b")
    result = run_cli(str(runs), "7", script="experiments/best_vs_last.py")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "| run | best_at | best ks | best ks, fresh | last ks | last ks, fresh |"
    for name in ("a", "b"):
        best = json.loads((runs / name / "metrics.json").read_text())["best"]
        row = next(line for line in lines if line.startswith(f"| {name} |")).split("|")
        assert int(row[2]) == best["iteration"] and float(row[3]) == pytest.approx(best["ks"], rel=1e-3)
        assert 0 < float(row[4]) < 1
    assert any(line.startswith("| mean |") for line in lines)
    train_tiny("train.keep_best=false", name="without")
    result = run_cli(str(tmp_path / "without"), script="experiments/best_vs_last.py")
    assert result.returncode != 0 and "no checkpoints/best.pt below" in result.stderr
