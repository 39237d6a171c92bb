"""Where a run's numbers came from: the code, the software, the machine and the command.

GAN results move with small things (a torch release, a thread count, an uncommitted edit), so a
run records them in RUN_DIR/environment.json: one entry for each process that trained it, its
start and every resume. A resume under other code, software or CPU says so in the log: the run
goes on, but may no longer match the same run never stopped bit for bit.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import ganlab
from ganlab.files import write_json

if TYPE_CHECKING:
    import torch

FILE = "environment.json"
# What decides a resumed run's arithmetic; the rest (host, command, ...) is for the record. On a
# CPU the CPU too (measured: the 1-D default's final KS 0.01126 on one, 0.01099 on another).
MUST_MATCH = ("code", "torch", "device", "threads")
# Where a file git does not track yet can change what a run computes (git pathspecs).
# The package, its configs, the presets (experiment=NAME), train.py and generate.py.
CODE = ("src", "conf", ":(glob)experiments/*.yaml", ":(glob)*.py")


def must_match(entry: dict) -> tuple[str, ...]:
    """MUST_MATCH, and the CPU for a process that computed on it."""
    return MUST_MATCH + (("cpu",) if entry.get("device") == "cpu" else ())


def git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.decode(errors="replace") if done.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """ganlab's version, and where it runs from a git checkout (an editable install), the commit
    and whether the code differs from it: edited tracked files, and new code files git does not
    track yet (a module, a config; `untracked` names them). A digest of the difference tells two
    edited states apart."""
    version = {"version": ganlab.__version__, "commit": None, "dirty": None}
    package = Path(ganlab.__file__).resolve()
    root = package.parents[2]  # src/ganlab/__init__.py -> the checkout
    if not (root / ".git").exists() or (root / "src" / "ganlab" / "__init__.py").resolve() != package:
        return version  # installed as a package: its version is all there is
    commit = git(root, "rev-parse", "HEAD")
    diff = git(root, "diff", "HEAD", "--no-ext-diff")  # text only: a binary file is one line
    new_files = git(root, "ls-files", "--others", "--exclude-standard", "-z", "--", *CODE)
    if commit is None or diff is None or new_files is None:
        return version
    untracked = sorted(filter(None, new_files.split("\0")))
    version |= {"commit": commit.strip(), "dirty": bool(diff or untracked)}
    if diff or untracked:
        digest = hashlib.sha1(diff.encode())
        for name in untracked:
            digest.update(b"\0" + name.encode() + b"\0" + read_bytes(root / name))
        version["diff_sha1"] = digest.hexdigest()
    if untracked:
        version["untracked"] = untracked
    return version


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # gone since git listed it
        return b""


def cpu_model() -> str:
    """The CPU and the kernels torch picks on it, e.g. "AMD EPYC (family 25 model 17; AVX512,
    bfloat16)": two CPUs that a hypervisor names alike can still compute a float32 run differently
    (oneDNN and MKL choose their kernels by instruction set)."""
    import torch

    from ganlab.distributed import cpu_has_native_bfloat16

    info = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = info.get("model name") or platform.processor() or platform.machine()
    where = f"family {info['cpu family']} model {info['model']}; " if "cpu family" in info and "model" in info else ""
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{name} ({where}{capability}{', bfloat16' if cpu_has_native_bfloat16() else ''})"


def environment(device: torch.device, world: int = 1) -> dict:
    """This process: what ran (code, software), where (machine, device, threads) and how (command)."""
    import numpy as np
    import torch

    return {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "cwd": os.getcwd(),
        "code": code_version(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
        "world_size": world,
    }


def record(run_dirs: list[Path], start: int, device: torch.device, world: int = 1) -> tuple[dict, list[str]]:
    """Add this process to each run directory's environment.json; return its entry, and how it
    differs, in what decides the arithmetic, from the process that started the first run (nothing
    for a new run)."""
    entry = {"from_iteration": start, **environment(device, world)}
    changes = []
    for k, run_dir in enumerate(run_dirs):
        path = Path(run_dir) / FILE
        earlier = earlier_processes(path) if start else []
        if k == 0 and earlier:
            changes = [f"{describe(key, earlier[0].get(key))} -> {describe(key, entry[key])}"
                       for key in must_match(entry) if earlier[0].get(key) != entry[key]]
        write_json(path, {"processes": [*earlier, entry]})
    return entry, changes


def markdown(entry: dict) -> str:
    """An entry as a Markdown table, for TensorBoard's Text tab."""
    rows = {
        "started": f"{entry['started']}, at iteration {entry['from_iteration']}",
        "command": f"`{entry['command']}` in `{entry['cwd']}`",
        "code": describe("code", entry["code"]),
        "software": f"Python {entry['python']}, torch {entry['torch']}, numpy {entry['numpy']}",
        "machine": f"{entry['host']}: {entry['cpu']}, {entry['cores']} cores; {describe('threads', entry['threads'])}, "
                   f"{entry['device']}, {entry['world_size']} process{'es' if entry['world_size'] > 1 else ''}",
    }
    return "| | |\n|---|---|\n" + "".join(f"| {key} | {value} |\n" for key, value in rows.items())


def command_that_started(run_dir: Path) -> str | None:
    """The command that started a run, where it can be typed again as it was (one process of
    train.py on its own: not a sweep's job, a torchrun job or a population's copy), with the
    directory it was typed in where that is not this one."""
    started = earlier_processes(Path(run_dir) / FILE)[:1]
    if not started or started[0].get("world_size") != 1 or Path(run_dir).parent.joinpath("seed_0").is_dir():
        return None
    command, cwd = str(started[0].get("command", "")), started[0].get("cwd")
    if command.split(" ")[0] != "train.py" or {"-m", "--multirun"} & set(command.split(" ")):
        return None
    return f"`python {command}`" + (f" in {cwd}" if cwd and Path(cwd) != Path.cwd() else "")


def earlier_processes(path: Path) -> list[dict]:
    """The entries a run directory has so far (none for a run that an older ganlab started)."""
    try:
        entries = json.loads(path.read_text())["processes"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return entries if isinstance(entries, list) and all(isinstance(e, dict) for e in entries) else []


def describe(key: str, value) -> str:
    """One of MUST_MATCH's values in a few words."""
    if key == "code":
        if not value or not value.get("commit"):
            return f"ganlab {value['version'] if value else '?'}"
        changes = f" with uncommitted changes {value['diff_sha1'][:8]}" if value["dirty"] else ""
        return f"ganlab {value['commit'][:10]}{changes}"
    if key == "threads":
        return f"{value} thread{'s' if value != 1 else ''}"
    return f"torch {value}" if key == "torch" else str(value)


def conditions(run_dir: Path) -> str | None:
    """What decided a run's arithmetic (MUST_MATCH), in a few words; a run whose processes
    differed in it: each in turn. None where the run has no environment.json."""
    said, last = [], None
    for process in earlier_processes(Path(run_dir) / FILE):
        words = ", ".join(describe(key, process.get(key)) for key in must_match(process))
        if words != last:
            said.append(f"from iteration {process.get('from_iteration')}: {words}" if said else words)
            last = words
    return "; ".join(said) or None
