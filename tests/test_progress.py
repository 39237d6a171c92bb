"""The console progress bar's speed and ETA."""

from ganlab import progress
from ganlab.progress import Progress


def test_speed_and_eta_leave_out_the_first_iteration(monkeypatch, capsys):
    now = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    bar = Progress(total=1001)
    now[0] = 20.0  # the first iteration compiles for 20 s
    bar.restart_clock(1)
    now[0] = 21.0  # then 500 iterations a second
    bar.update(501, {"d": 0.5})
    now[0] = 22.0
    bar.update(1001, {"d": 0.5})
    short = Progress(total=10)
    short.restart_clock(1)
    short.update(1, {"d": 0.5})  # no iteration timed yet
    lines = capsys.readouterr().err.splitlines()  # (not a terminal: a line per update)
    assert lines == ["[############------------] 501/1001 d=0.500 500 it/s ETA 1s",
                     "[########################] 1001/1001 d=0.500 500 it/s ETA 0s",
                     "[##----------------------] 1/10 d=0.500 ? it/s"]


def test_a_run_whose_output_pipe_closes_trains_to_the_end(tmp_path):
    """`python train.py | head -2`: once head has its lines, each write to the pipe fails (EPIPE).
    The progress bar's failed write ended the run, with "could not write the run's files ...
    make room" and no checkpoint."""
    import json
    import subprocess
    import sys

    from conftest import ROOT, SCRATCH

    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "train.iterations=400", "train.progress=true",
                             "train.eval_every=200", "dataset.eval_samples=200", f"hydra.run.dir={run_dir}"],
                            cwd=SCRATCH, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert b"run directory" in proc.stdout.readline()  # what `head -1` reads; then it closes the pipe
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert json.loads((run_dir / "metrics.json").read_text())["final"]["iteration"] == 400
