"""SIGTERM to a joblib sweep's launcher at many moments, this checkout's code against an older
commit's, counted by how each sweep ended.

    python experiments/signal_a_sweep.py --against COMMIT [--tries 40] [--at seconds|calls] [--show]

--at seconds: the signal comes --first to --last seconds after the sweep wrote multirun.yaml,
evenly spread (the tiny sweep below ends about 3.5 s after that here). --at calls: it comes from
inside the launcher, at the K-th Python function call after Hydra's sweeper starts, K evenly
spread up to joblib's Parallel (a profile hook counts them: the moments when Hydra builds each
job's config, which seconds rarely hit). Each sweep: two tiny jobs (seed=0,1), two workers.
"""

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["train.iterations=40", "train.batch_size=4", "train.eval_every=20", "train.log_every=10",
        "dataset.eval_samples=20", "train.checkpoint_every=20", "train.progress=false"]

# Runs train.py and sends itself SIGTERM at the K-th call after the sweeper starts (K=0: prints
# how many calls come before joblib's Parallel instead).
AT_CALL = """
import os, runpy, signal, sys
K, calls, started = int(os.environ["SIGNAL_AT_CALL"]), [0], [False]
def profile(frame, event, arg):
    if event != "call":
        return
    if not started[0]:
        started[0] = frame.f_code.co_name == "sweep" and "basic_sweeper" in frame.f_code.co_filename
        return
    calls[0] += 1
    if K == 0 and frame.f_code.co_name == "__call__" and frame.f_code.co_filename.endswith("joblib/parallel.py"):
        sys.setprofile(None)
        print(f"calls: {calls[0]}", file=sys.stderr)
    elif calls[0] == K:
        sys.setprofile(None)
        os.kill(os.getpid(), signal.SIGTERM)
sys.setprofile(profile)
sys.argv[0] = sys.argv[1]
del sys.argv[1]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def sweep(tree: Path, where: Path, at_call: int | None = None) -> subprocess.Popen:
    command = [str(tree / "train.py"), "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1", *TINY,
               f"hydra.sweep.dir={where / 'sweep'}"]
    if at_call is not None:
        command = ["-c", AT_CALL, *command]
    return subprocess.Popen([sys.executable, *command], cwd=where, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(tree / "src"), "SIGNAL_AT_CALL": str(at_call)})


def outcome(process: subprocess.Popen, err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("[")]  # (Hydra's log lines)
    if "Traceback" in err:
        return f"traceback, exit {process.returncode}"
    if process.returncode != 128 + signal.SIGTERM:
        return f"exit {process.returncode}: {lines[-1][:90] if lines else ''}"
    if any("save a checkpoint and stop" in line for line in lines):
        return "143, the jobs saved first"
    if len(lines) == 1:
        return "143, one line: " + ("the sweep had finished" if "had finished" in lines[0] else "the sweep stopped")
    return f"143, {len(lines)} lines"


def ended(process: subprocess.Popen, when: str, show: bool) -> str:
    try:
        _, err = process.communicate(timeout=120)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    kind = outcome(process, err)
    if show and not kind.startswith("143"):
        print(f"--- {when}: {kind}\n{err[-3000:]}", flush=True)
    return kind


def tries(tree: Path, args: argparse.Namespace) -> collections.Counter:
    counts = collections.Counter()
    if args.at == "calls":
        with tempfile.TemporaryDirectory() as where:
            process = sweep(tree, Path(where), at_call=0)
            _, err = process.communicate(timeout=300)
            total = int(err.split("calls: ")[1].split()[0])
    for i in range(args.tries):
        with tempfile.TemporaryDirectory() as where:
            where = Path(where)
            if args.at == "calls":
                at_call = 1 + (total - 1) * i // max(1, args.tries - 1)
                counts[ended(sweep(tree, where, at_call), f"call {at_call} of {total}", args.show)] += 1
                continue
            process = sweep(tree, where)
            while not (where / "sweep" / "multirun.yaml").exists() and process.poll() is None:
                time.sleep(0.005)
            seconds = args.first + (args.last - args.first) * i / max(1, args.tries - 1)
            time.sleep(seconds)
            late = process.poll() is not None
            process.send_signal(signal.SIGTERM)  # (Popen sends nothing to a process that has ended)
            kind = ended(process, f"{seconds:.2f} s", args.show and not late)
            counts["had ended before the signal" if late else kind] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="an older commit to compare with")
    parser.add_argument("--tries", type=int, default=40)
    parser.add_argument("--at", choices=["seconds", "calls"], default="seconds")
    parser.add_argument("--first", type=float, default=0.0)
    parser.add_argument("--last", type=float, default=4.5)
    parser.add_argument("--show", action="store_true", help="print the stderr of each sweep not ended with 143")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as old:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", old, args.against], check=True)
        try:
            for name, tree in ((args.against, Path(old)), ("this checkout", ROOT)):
                counts = tries(tree, args)
                print(f"{name}: {args.tries} signals at {args.at}: "
                      + "; ".join(f"{n} {kind}" for kind, n in counts.most_common()), flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", old], check=False)


if __name__ == "__main__":
    main()
