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
