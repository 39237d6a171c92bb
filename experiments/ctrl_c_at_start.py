"""Ctrl-C at instants across `import torch`: Python's own handling against ganlab's
(errors.report_ctrl_c), counted by how each process ended.

    python experiments/ctrl_c_at_start.py [--tries 250] [--first 0.25] [--last 0.55]

A KeyboardInterrupt raised where C++ has called Python aborts the process (SIGABRT, "terminate
called after throwing an instance of 'pybind11::error_already_set'"); that is rare, so it takes
hundreds of tries. Set --first/--last around this machine's import of torch (here 0.25-0.55 s
of a ~0.6 s import). Each try that is not stopped sleeps 5 s: such a Ctrl-C was swallowed.
"""

import argparse
import collections
import signal
import subprocess
import sys
import time

PROGRAMS = {
    "python": "import torch, torch._dynamo, time; time.sleep(5)",
    "ganlab": "from ganlab.errors import report_ctrl_c; report_ctrl_c('stopped'); "
              "import torch, torch._dynamo, time; time.sleep(5)",
}


def outcome(process: subprocess.Popen, err: str) -> str:
    if process.returncode == -signal.SIGABRT:
        return "aborted (SIGABRT)"
    if "Traceback" in err:
        return "traceback"
    if process.returncode == 0:
        return "went on (Ctrl-C swallowed)"
    if process.returncode == -signal.SIGINT:
        return "ended by SIGINT, one line" if err.count("\n") == 1 else "ended by SIGINT"
    return f"exit {process.returncode}"


def tries(program: str, count: int, first: float, last: float) -> collections.Counter:
    counts = collections.Counter()
    for i in range(count):
        delay = first + (last - first) * (i % 31) / 30
        process = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        time.sleep(delay)  # (SIG_DFL above: a background job's children start with Ctrl-C ignored)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate()
        counts[outcome(process, err)] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=250)
    parser.add_argument("--first", type=float, default=0.25)
    parser.add_argument("--last", type=float, default=0.55)
    args = parser.parse_args()
    for name, program in PROGRAMS.items():
        counts = tries(program, args.tries, args.first, args.last)
        print(f"{name:7s} {args.tries} tries: " + ", ".join(f"{n} {kind}" for kind, n in counts.most_common()),
              flush=True)


if __name__ == "__main__":
    main()
