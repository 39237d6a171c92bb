"""Checkpoints: written atomically, read without unpickling arbitrary objects; and the lock that
keeps one process training in a run directory. torch is imported where a checkpoint is written or
read: a sweep's launcher reads its jobs' locks (sweep.py) in a process that never needs torch."""

from __future__ import annotations

import atexit
import os
import pickle
import shutil
import socket
import zipfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Iterator

from ganlab.config import remove_if_empty
from ganlab.errors import Diverged, UserError, done, undo_if_stopped
from ganlab.files import temporary, written_whole
from ganlab.overrides import as_typed

LAST = "last.pt"
BEST = "best.pt"  # only what sampling needs: G, its average, the config (train.keep_best)
FAILURE = "failure.txt"  # in a run directory whose losses diverged: "diverged: ..." (run.py writes it)


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable, unsafe or of another run."""


def compact(value: Any) -> Any:
    """Copy out tensors that are views of a larger storage (a population's copies are rows of
    stacked tensors): torch.save would otherwise write the whole storage with each of them."""
    import torch

    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(compact(v) for v in value)
    if isinstance(value, torch.Tensor) and value.untyped_storage().nbytes() > value.nbytes:
        return value.clone()
    return value


def save_atomic(state: dict[str, Any], directory: Path, keep: int = 0, name: str = LAST) -> Path:
    """Write `directory/name` (and `iter_N.pt`, keeping the newest `keep` of those).

    The bytes go to a temporary file that is flushed, fsynced and then renamed over the old file:
    a crash or a full disk mid-save leaves the previous checkpoint intact.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    import torch

    with temporary(directory / f".{name}.tmp") as tmp:
        try:
            with open(tmp, "wb") as f:
                torch.save(compact(state), f)
                f.flush()
                os.fsync(f.fileno())
            if keep > 0:
                numbered = directory / numbered_name(state["iteration"])
                numbered.unlink(missing_ok=True)
                link_or_copy(tmp, numbered)
                for old in sorted(directory.glob("iter_*.pt"))[:-keep]:
                    old.unlink()
            os.replace(tmp, directory / name)
        except OSError as error:
            before = "the previous checkpoint is kept" if (directory / name).exists() else "none had been saved before"
            raise CheckpointError(f"could not write a checkpoint to {directory} ({error.strerror}); {before}; "
                                  "free space or fix permissions") from None
    return directory / name


def link_or_copy(source: Path, target: Path) -> None:
    """`target` as a second name for `source`'s bytes, which are not written twice; a copy, whole
    or none, where the file system has no hard links (FAT and exFAT drives, some network shares)."""
    try:
        os.link(source, target)
    except OSError:  # (if the copy fails too, for want of room say, save_atomic reports it)
        with open(source, "rb") as original, written_whole(target) as copy:
            shutil.copyfileobj(original, copy)


def numbered_name(iteration: int) -> str:
    """iter_00004000.pt: zero-padded, so the names sort as the iterations do."""
    return f"iter_{iteration:08d}.pt"


def copies_in(run_dir: Path) -> list[Path]:
    """A population's directory holds a run a copy, seed_N/ (by seed); [] for any other directory."""
    copies = [path for path in Path(run_dir).expanduser().glob("seed_*") if path.name[5:].isdigit()]
    return sorted(copies, key=lambda path: int(path.name[5:]))


def last_in(run_dir: Path, key: str = "resume") -> Path:
    """run_dir/checkpoints/last.pt; a CheckpointError when there is none (`key`: the option that
    named run_dir, for the example in the message)."""
    run_dir = Path(run_dir).expanduser()
    if run_dir.is_file():  # resume=RUN/checkpoints/last.pt, say
        owner = run_dir.parent.parent if run_dir.parent.name == "checkpoints" else run_dir.parent
        raise CheckpointError(f"{run_dir} is a file; give the directory of the run that holds it, {owner}")
    path = run_dir / "checkpoints" / LAST
    if path.is_file():
        return path
    if copies := copies_in(run_dir):  # a population's directory: its copies are the runs
        raise CheckpointError(f"{run_dir} holds a population of {len(copies)} copies, each a run with "
                              f"checkpoints of its own: give one, e.g. {as_typed(key, str(copies[0]))}")
    if problem := holds_runs(run_dir, key):
        raise CheckpointError(problem)
    if owner := enclosing_run(run_dir):
        raise CheckpointError(f"{run_dir} lies inside the run {owner}; give the run's directory, "
                              f"{as_typed(key, str(owner))}")
    if how := how_it_diverged(run_dir):
        raise CheckpointError(f"{run_dir} has no checkpoint: it diverged before its first (train.checkpoint_every), "
                              f"{how.removeprefix('diverged: ')}; start a new run with lower learning rates or "
                              "train.r1_gamma")
    require(path)  # (not there: says so)
    return path


def enclosing_run(directory: Path) -> Path | None:
    """The run that a folder one or two levels down belongs to (RUN/checkpoints, RUN/images/TAG)."""
    return next((run for run in list(directory.parents)[:2] if (run / "checkpoints" / LAST).is_file()), None)


def holds_runs(directory: Path, key: str) -> str | None:
    """What to say where `directory` is no run but holds runs one level below (a sweep's directory,
    a folder such as outputs/DATE); None where it holds none. A sweep's job names hold `=` and `,`:
    the example is quoted so it can be pasted as `key`=."""
    try:
        runs = sorted(path for path in directory.iterdir()
                      if (path / "checkpoints" / LAST).is_file() or copies_in(path))
    except OSError:  # no such directory, or one this user cannot read: no runs known to be there
        return None
    if not runs:
        return None
    example = f"e.g. {as_typed(key, str(runs[0]))}"
    if (directory / "multirun.yaml").is_file():
        whole = (f" (the whole sweep continues with its own command plus resume=auto "
                 f"{as_typed('hydra.sweep.dir', str(directory))})" if key == "resume" else "")
        return f"{directory} is a sweep's directory, not a run: give one of its jobs, {example}{whole}"
    return f"{directory} is not a run, but holds runs: give one, {example}"


def check_resumable(run_dir: Path) -> None:
    """A run directory, or a population's, with checkpoints to continue (a population's copies
    that diverged are left out: they ended where they did, a checkpoint or none)."""
    copies = copies_in(run_dir)
    for directory in [copy for copy in copies if not (copy / FAILURE).exists()] if copies else [run_dir]:
        last_in(directory)


def how_it_diverged(run_dir: Path) -> str | None:
    """Where a run diverged, its failure.txt's first clause: "diverged: the losses became NaN or
    infinite at iteration 12 (now D inf, G nan)"; else None."""
    failure = Path(run_dir).expanduser() / FAILURE
    return failure.read_text().split(";")[0].strip() if failure.is_file() else None


def check_not_diverged(run_dir: Path) -> None:
    """A run that diverged in an earlier process (its failure.txt), or a population whose every
    copy did, is a result, not a run to continue: resumed, it would only repeat the same steps
    (resume=auto retrained it, and where it had diverged before its first checkpoint stopped the
    sweep with "already holds a run"). Diverged, which a sweep counts as a failed job, and goes on."""
    run_dir = Path(run_dir).expanduser()
    ended, copies = how_it_diverged(run_dir), copies_in(run_dir)
    if not ended and copies and all((copy / FAILURE).is_file() for copy in copies):
        ended = f"every copy diverged: {', '.join(f'{copy.name}/{FAILURE}' for copy in copies)}"
    if ended:
        raise Diverged(f"{run_dir} ended in an earlier process ({ended}); resumed, it would repeat the same steps; "
                       "start a new run with lower learning rates or train.r1_gamma")


def resumable(run_dir: Path) -> bool:
    try:
        check_resumable(run_dir)
        return True
    except CheckpointError:
        return False


def check_unused(run_dir: Path) -> None:
    """A new run never writes over an earlier one's checkpoints, metrics or TensorBoard curves."""
    run_dir = Path(run_dir).expanduser()
    earlier = [path for directory in (run_dir, *copies_in(run_dir))
               for path in (directory / "checkpoints" / LAST, directory / "metrics.json",
                            *directory.glob("events.out.tfevents.*")) if path.exists()]
    if earlier:
        has_last = any(path.name == LAST for path in earlier)
        fix = f"continue it with {as_typed('resume', str(run_dir))} (a sweep: its command plus resume=auto)" \
            if has_last else "remove it"
        raise CheckpointError(f"{run_dir} already holds a run ({earlier[0].relative_to(run_dir)}); {fix}, "
                              "or write this one elsewhere (hydra.run.dir=DIR; hydra.sweep.dir=DIR with -m)")
    if problem := holds_runs(run_dir, "resume"):  # a new run there would mix its files with theirs
        raise CheckpointError(f"{problem}; or write a new run elsewhere (hydra.run.dir=DIR)")


LOCK = ".ganlab.lock"  # in a run directory while a process trains in it: "HOST PID"


def check_not_in_use(run_dir: Path) -> None:
    """A run directory that another live process is training in (the same command started twice,
    a resume of a run that is still going) is not written to: both would save over each other.
    A population's copy is in use while the population trains, and the population while a copy does."""
    run_dir = Path(run_dir).expanduser()
    population = [run_dir.parent] if run_dir.name.startswith("seed_") and run_dir.name[5:].isdigit() else []
    for directory in (run_dir, *copies_in(run_dir), *population):
        try:
            host, pid = (directory / LOCK).read_text().split()
            pid = int(pid)
        except (OSError, ValueError):
            continue  # no lock, or an unreadable one: nothing is known to run there
        if host == socket.gethostname() and (pid == os.getpid() or not alive(pid)):
            continue  # this process, or a run that was killed or crashed
        where = "" if host == socket.gethostname() else f" on {host}"
        raise CheckpointError(f"{directory} is in use: process {pid}{where} is training in it; wait for it to end, "
                              f"or stop it (kill {pid}: it saves a checkpoint), then continue it with the same "
                              f"command (if that process is gone, remove {directory / LOCK})")


def holders(root: Path) -> dict[Path, str]:
    """The locks under root held by live processes of this machine, each with its "HOST PID"."""
    found = {}
    for path in Path(root).rglob(LOCK):
        with suppress(OSError, ValueError):
            text = path.read_text()
            host, pid = text.split()
            if host == socket.gethostname() and alive(int(pid)):
                found[path] = text
    return found


def alive(pid: int) -> bool:
    """Whether process `pid` of this machine still runs (a lock of one that does not is stale)."""
    if os.name == "nt":
        return alive_on_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def alive_on_windows(pid: int) -> bool:
    """os.kill(pid, 0) is no probe on Windows: 0 is CTRL_C_EVENT there, a Ctrl-C sent to a process
    group. Ask for the process's exit code instead. Where it cannot be had, the process counts as
    alive, and the "in use" message says which lock to remove. (Not run on Windows by our tests.)"""
    import ctypes
    from ctypes import wintypes

    still_active, no_such_process, query_limited_information = 259, 87, 0x1000
    try:
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        kernel32.OpenProcess.restype = wintypes.HANDLE
        kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
        kernel32.GetExitCodeProcess.argtypes = (wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD))
        kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
        handle = kernel32.OpenProcess(query_limited_information, False, pid)
        if not handle:
            return ctypes.get_last_error() != no_such_process  # (access denied: someone else's process)
        try:
            code = wintypes.DWORD()
            return not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) or code.value == still_active
        finally:
            kernel32.CloseHandle(handle)
    except (OSError, AttributeError, ValueError):
        return True


def take_lock(run_dir: Path) -> Path:
    """Make run_dir's lock this process's (a lock left by a process that is gone is taken over);
    raises CheckpointError while another live process holds it."""
    path = Path(run_dir).expanduser() / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # atomic: one process wins
            break
        except FileExistsError:
            check_not_in_use(run_dir)
            path.unlink(missing_ok=True)  # this process's own, or left by a process that is gone
    undo_if_stopped(path, lambda: release(path))
    with os.fdopen(fd, "w") as f:
        f.write(f"{socket.gethostname()} {os.getpid()}\n")
    return path


def release(path: Path) -> None:
    """Remove a lock if it is still this process's."""
    done(path)
    with suppress(OSError):
        if path.read_text().split() == [socket.gethostname(), str(os.getpid())]:
            path.unlink()


@contextmanager
def held(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock while this process trains in it (see check_not_in_use)."""
    path = take_lock(run_dir)
    try:
        yield
    finally:
        release(path)


def claim_early(run_dir: Path) -> None:
    """Take the run directory's lock before Hydra writes its .hydra/ there (train.py): two
    processes started at the same instant for one directory would both find it free, and the
    second's Hydra would write over the first's config. Released at exit, and the directory
    removed if this process made it and left it empty (a bad override, say)."""
    run_dir = Path(run_dir).expanduser()
    made = not run_dir.exists()
    try:
        path = take_lock(run_dir)
    except OSError:
        return  # not writable: Hydra's own attempt says so, in one line (errors.py)

    def let_go() -> None:
        release(path)
        remove_if_empty([run_dir] if made else [])

    atexit.register(let_go)
    undo_if_stopped(path, let_go)


def require(path: Path) -> None:
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no checkpoint there; give the directory of a run written by train.py")


# Raised when a checkpoint of an older ganlab can no longer be continued exactly. 2: the seed MNIST
# layers (models/layers.py) and the chunked random streams (streams.py).
FORMAT = 2


def load(path: Path) -> dict[str, Any]:
    """Load tensors and plain containers only (weights_only): a crafted pickle cannot run code."""
    path = Path(path)
    require(path)

    def corrupt(reason: str) -> CheckpointError:
        return CheckpointError(f"{path}: truncated or corrupt checkpoint ({reason}); copy an older "
                               "checkpoints/iter_*.pt over it to continue from there, or start a new run")

    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is damage
        raise corrupt("not the zip archive torch.save writes")
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).splitlines()[0]
        raise CheckpointError(f"{path}: refused, it holds objects other than tensors and plain data "
                              f"({reason}); only load checkpoints written by ganlab") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as error:
        raise corrupt(str(error).splitlines()[0]) from None
    if not isinstance(state, dict) or "iteration" not in state or "config" not in state:
        raise CheckpointError(f"{path}: not a ganlab checkpoint (no iteration/config inside)")
    if state.get("format", 1) != FORMAT:
        raise CheckpointError(f"{path}: written by another ganlab version (checkpoint format "
                              f"{state.get('format', 1)}, this one continues format {FORMAT}); start a new run")
    with_settings_added_since(state["config"])
    return state


def with_settings_added_since(config: dict) -> None:
    """Give a config the settings ganlab gained after it was saved, at the value the code that
    saved it had: a resume then compares them with the command's, and generate.py builds the
    model that trained."""
    model = config.get("model", {})
    if model.get("name") == "gan1d":
        model.setdefault("d_negative_slope", 0.0)  # D's ReLUs were not leaky
