"""A user's mistake (bad override, bad value, bad file) ends the run with one line, exit code 2;
so does a Ctrl-C where the training loop is not there to take it (report_ctrl_c)."""

from __future__ import annotations

import atexit
import dataclasses
import os
import re
import signal
import sys
from contextlib import suppress
from typing import Callable, NoReturn


# The signals that ask a run to save a checkpoint and stop (run.stop_requests), and a joblib
# sweep's launcher to let its jobs do so (sweep.let_the_jobs_stop_first). Windows has no SIGHUP.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class UserError(Exception):
    """Something the user can fix; the message says what is wrong and how to fix it."""

    exit_code = 2


class Diverged(UserError):
    """A loss became NaN or infinite."""


# Hydra's plugins that ganlab's extras install (pyproject), by the config each adds: without the
# plugin Hydra says only "Could not find 'hydra/launcher/joblib'".
PLUGINS = {
    "hydra/launcher/joblib": ("hydra-joblib-launcher", "sweep"),
    "hydra/sweeper/optuna": ("hydra-optuna-sweeper", "sweep"),
    "hydra/launcher/submitit_local": ("hydra-submitit-launcher", "cluster"),
    "hydra/launcher/submitit_slurm": ("hydra-submitit-launcher", "cluster"),
}


def no_such_choice(config: str, options: list[str]) -> str:
    """A config group's option Hydra cannot find (config: 'group/name'): a plugin that is not
    installed, or a name that does not exist."""
    from ganlab.config import UNREADABLE_PRESETS  # (config.py imports this module)

    group, name = config.rsplit("/", 1)
    if group == "experiment" and name in UNREADABLE_PRESETS:
        return UNREADABLE_PRESETS[name]
    if config in PLUGINS:
        package, extra = PLUGINS[config]
        return (f"{group}={name} comes from Hydra's plugin {package}, which is not installed; install it with "
                f"ganlab's {extra} extra: pip install -e \".[{extra}]\"")
    return f"{group}={name} is not a known choice; use one of {', '.join(options)}"


_NOISE = ("full_key:", "reference_type", "object_type", "Set the environment variable",
          "Config search path", "provider=")


def one_line(error: BaseException) -> str:
    """The message and its cause, without OmegaConf's key/type dump, joined into one line."""
    import yaml
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, InterpolationResolutionError

    if isinstance(error, yaml.YAMLError):
        return f"{unreadable_yaml(error)}; correct it"
    ours = error.__cause__ or error.__context__  # a line of ganlab's, raised in a resolver that Hydra called
    for _ in range(5):  # (OmegaConf keeps it as the context of its InterpolationResolutionError)
        if ours is None or isinstance(ours, UserError):
            break
        ours = ours.__cause__ or ours.__context__
    if isinstance(ours, UserError):
        return str(ours)
    if isinstance(error, MissingConfigException) and error.options and "/" in (error.missing_cfg_file or ""):
        return no_such_choice(error.missing_cfg_file, error.options)
    if isinstance(error, OverrideParseException):
        from ganlab.overrides import unreadable

        return unreadable(error)
    if isinstance(error, InterpolationResolutionError) and error.full_key:  # (it named the ${...}, not the key)
        return f"cannot resolve the value of {error.full_key}: {str(error).splitlines()[0]}"
    cause = error.__cause__
    if wrong := wrong_type(error):
        return wrong
    if in_file := config_file_mistake(error):
        return in_file
    if isinstance(error, HydraException) and isinstance(cause, ConfigAttributeError) \
            and dataclasses.is_dataclass(cause.object_type) and cause.full_key:
        from ganlab.config import not_an_option  # (config.py imports this module)

        return not_an_option(cause.full_key, cause.object_type)  # in place of Hydra's advice to add it with +
    parts = [str(error)]
    if error.__cause__ is not None and str(error.__cause__) not in parts[0]:
        parts.append(str(error.__cause__))
    lines = [line.strip() for part in parts for line in part.splitlines()]
    return " ".join(line for line in lines if line and not line.startswith(_NOISE))


# OmegaConf's words for a value of the wrong type -> what the key takes
_TAKES = (("to Integer", "a whole number"), ("to Float", "a number"), ("valid bool", "true or false"))


def wrong_type(error: BaseException) -> str | None:
    """What a key takes, for Hydra's "Error merging override train.iterations=1e3 Value '1000.0'
    of type 'float' could not be converted to Integer", and the value to write where it is plain."""
    from omegaconf.errors import ValidationError

    found, cause = re.match(r"Error merging override (\S+)", str(error)), error.__cause__
    if not (found and isinstance(cause, ValidationError) and cause.full_key):
        return None
    override, key, reason = found[1], cause.full_key, str(cause).splitlines()[0]
    if "is not Optional" in reason:
        return f"{override}: {key} cannot be null; give it a value (`python train.py --cfg job` shows its default)"
    takes = next((kind for words, kind in _TAKES if words in reason), None)
    if takes is None:
        return None
    write = ""
    with suppress(ValueError):
        number = float(override.partition("=")[2])
        if takes == "a whole number" and number.is_integer():
            write = f"; write {key}={int(number)}"
    return f"{override}: {key} takes {takes}{write}"


def unreadable_yaml(error: BaseException) -> str:
    """'FILE cannot be read (PROBLEM at line L, column C)' for yaml's error: a preset or a config
    group's file with a mistake, which Hydra let through as yaml's traceback."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{mark.name if mark is not None else 'a YAML file'} cannot be read ({problem}{at})"


def config_file_mistake(error: BaseException) -> str | None:
    """A setting in a preset or a config group's file that does not fit, where Hydra said only "In
    'experiment/NAME': ConfigKeyError raised while composing config: Key 'shuffle' not in
    'NormalDatasetConfig'" (or ValidationError's "Value 'abc' ... could not be converted to
    Integer", without the key): a preset's config group the command line replaced
    (`experiment=seed_mnist dataset=normal`: the preset sets dataset.shuffle, which the 1-D dataset
    lacks), or the file's own mistake (a user's preset or optimizer file with a key the schemas
    lack, or a value of the wrong type)."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    found, cause = re.match(r"In '(.+)/([^'/]+)'", str(error)), error.__cause__ or error.__context__
    if not (found and isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None)):
        return None
    chose, key = f"{found[1]}={found[2]}", cause.full_key
    if not isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
        return f"{chose} sets {key}: {str(cause).splitlines()[0]}"
    group = key.split(".")[0]
    replaced = next((arg for arg in sys.argv[1:] if arg.startswith(f"{group}=")), None)
    if found[1] == "experiment" and replaced is not None:
        return (f"{chose} sets {key}, which {replaced} does not have: the preset brings its own "
                f"{group}; drop {replaced}, or use a preset made for {replaced} (README, Presets)")
    if dataclasses.is_dataclass(cause.object_type):
        from ganlab.config import not_an_option  # (config.py imports this module)

        return f"{chose}: {not_an_option(key, cause.object_type)}"
    return None


def fail(error: BaseException) -> NoReturn:
    if os.environ.get("GANLAB_FULL_ERROR") == "1":
        raise error
    line = one_line(error)
    say(f"ganlab: error: {line}\n")
    in_log_files(line)
    sys.exit(getattr(error, "exit_code", 2))


def say(text: str) -> None:
    """Write to stderr, where the terminal may be gone (a run stopped by its SIGHUP)."""
    try:
        sys.stderr.write(text)
    except RuntimeError:  # a signal handler's write that interrupted another ("reentrant call")
        with suppress(OSError):
            os.write(2, text.encode(errors="replace"))
    except (OSError, ValueError):
        pass


def flush_output() -> None:
    """Before a process ends without Python's own exit (os._exit, a signal's default action)."""
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError, RuntimeError):  # (RuntimeError: a handler that interrupted a print)
            stream.flush()


def in_log_files(line: str) -> None:
    """The line that ends a run, in its train.log too (the log's own files, not the console, which
    has the line already): a log read later says how the run ended, and after a terminal closed
    (SIGHUP) the log is all there is."""
    import logging

    record = logging.LogRecord("ganlab", logging.ERROR, __file__, 0, line, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def out_of_memory(error: BaseException, device: str) -> str | None:
    """'out of memory on DEVICE (an allocation of 2.0 GB failed)' where `error` is torch's
    allocator refusing (CPU, CUDA or MPS: a RuntimeError, torch.OutOfMemoryError among them);
    else None. A batch or model too big for the machine is the user's to change, not a crash."""
    import re

    text = str(error)
    if not (isinstance(error, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()):
        return None
    amount = re.search(r"(?i)tried to allocate (\d+ bytes|[\d.]+ ?[KMGT]i?B)", text)
    if amount and amount[1].endswith("bytes"):
        tried = f" (an allocation of {int(amount[1].split()[0]) / 1e9:.1f} GB failed)"
    else:
        tried = f" (an allocation of {amount[1]} failed)" if amount else ""
    return f"out of memory on {device}{tried}"


_ctrl_c_says = ["stopped while starting"]  # report_ctrl_c's line, as far as the process has come
_left_behind: dict[object, Callable[[], None]] = {}  # what a stop at once removes (undo_if_stopped)


def on_ctrl_c(said: str) -> None:
    """What a Ctrl-C that reaches no handler of the training loop's says from now on."""
    _ctrl_c_says[0] = said


def undo_if_stopped(key: object, undo: Callable[[], None]) -> None:
    """Have a Ctrl-C outside the training loop run `undo` (release a lock, remove a temporary
    file) as it ends the process, which runs no `finally` and no atexit (report_ctrl_c); until
    done(key)."""
    _left_behind[key] = undo


def done(key: object) -> None:
    _left_behind.pop(key, None)


def report_ctrl_c(said: str) -> None:
    """Ctrl-C where no handler of ganlab's is in place (imports, Hydra, building the models, the
    moments after a run) ends the process with one line, `said` or what on_ctrl_c() set since,
    and by SIGINT, as with Python's own handling, so a calling shell script stops too.

    Python's own handling raises KeyboardInterrupt wherever Python code runs next, and there it
    printed a traceback; inside torch's import, in Python code that C++ called (pybind11), it
    aborted the process instead ("terminate called after throwing ... KeyboardInterrupt", exit
    134) or was swallowed, and the process went on; after a run, in an atexit function, it
    printed "Exception ignored". So the handler raises nothing: it says the line, undoes what
    undo_if_stopped() lists, and ends the process by the signal. HYDRA_FULL_ERROR=1 keeps
    Python's handling and its traceback. Installed first thing, before the imports that take
    most of a start-up: this module imports nothing else."""
    full = os.environ.get("HYDRA_FULL_ERROR") == "1"
    on_ctrl_c(said)

    def stop_at_once(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C does not cut the undoing short
        line = f"SIGINT (Ctrl-C): {_ctrl_c_says[0]}"
        say(f"ganlab: error: {line}\n")
        if "logging" in sys.modules:  # (imported by the time a run has a train.log)
            in_log_files(line)
        for undo in reversed(list(_left_behind.values())):
            with suppress(Exception):
                undo()
        flush_output()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)

    def hook(kind, error, traceback) -> None:  # a KeyboardInterrupt raised on purpose that got out (the loop's)
        if issubclass(kind, KeyboardInterrupt) and not full:
            say(f"ganlab: error: SIGINT (Ctrl-C): {_ctrl_c_says[0]}\n")
        else:
            sys.__excepthook__(kind, error, traceback)

    sys.excepthook = hook
    if not full and signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # (not ignored: `&`, nohup)
        signal.signal(signal.SIGINT, stop_at_once)


_exit_code: list[int] = []  # end_with's


def end_with(code: int) -> None:
    """The process ends with `code` (a signal handler's, which has said its line), however it
    ends: a SystemExit raised from the handler can be replaced by another error where it lands,
    or come in the interpreter's shutdown, where it is only "Exception ignored"."""
    _exit_code[:] = [code]


@atexit.register  # on import, before the libraries register theirs: so it runs after theirs
def _end_with_the_code_set() -> None:
    if _exit_code:
        if "logging" in sys.modules:  # (its own exit handler, registered before this one, would not run)
            sys.modules["logging"].shutdown()
        flush_output()
        os._exit(_exit_code[0])


def run_reporting_user_errors(main: Callable[[], object]) -> None:
    """Run Hydra's main so that a bad command line gives one line, not Hydra's multi-line dump.

    HYDRA_FULL_ERROR=1 still shows the full traceback.
    """
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        os.environ["GANLAB_FULL_ERROR"] = "1"
        main()
        return
    import yaml
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    os.environ["HYDRA_FULL_ERROR"] = "1"  # let composition errors reach us instead of Hydra's printer
    try:
        main()
    except Exception as error:
        if _exit_code:  # a stop's SystemExit that the code where it landed replaced with an error of its own
            sys.exit(_exit_code[0])
        if isinstance(error, (HydraException, OmegaConfBaseException, UserError, yaml.YAMLError)):
            fail(error)
        if isinstance(error, ValueError) and str(error).startswith("Only one of --run, --multirun"):  # Hydra's flags
            fail(UserError("-m (--multirun), --cfg, --info and --shell-completion cannot be combined; give one of "
                           "them (--cfg job without -m prints the config of the run its overrides make)"))
        if isinstance(error, OSError) and error.filename is not None:  # Hydra could not write the run directory
            key = "hydra.sweep.dir" if {"-m", "--multirun"} & set(sys.argv) else "hydra.run.dir"
            fail(UserError(f"cannot write {error.filename} ({error.strerror}); choose a writable directory with {key}=DIR"))
        raise
