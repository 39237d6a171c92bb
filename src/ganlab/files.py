"""Files written whole: a reader (a sweep's summary, a resume, TensorBoard's user) or a process
killed mid-write never sees half of one, and the file it replaces stays intact until then."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from ganlab.errors import done, undo_if_stopped


@contextmanager
def written_whole(path: Path) -> Iterator[BinaryIO]:
    """A file to write `path`'s new content into; it takes `path`'s place (os.replace, atomic)
    once the block ends, and is removed if the block fails."""
    path = Path(path)
    with temporary(path.with_name(f".{path.name}.tmp")) as tmp:
        try:
            with open(tmp, "wb") as f:
                yield f
            os.replace(tmp, path)
        except OSError as error:  # (a full disk, say) named by the file the user knows, not the temporary one
            raise OSError(error.errno, error.strerror, str(path)) from None


@contextmanager
def temporary(path: Path) -> Iterator[Path]:
    """`path`, removed once the block ends (gone already after a rename; a partial file otherwise),
    and by a Ctrl-C that ends the process inside it, which runs no `finally` (errors.report_ctrl_c)."""
    undo_if_stopped(path, lambda: path.unlink(missing_ok=True))
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        done(path)


def write_text(path: Path, text: str) -> None:
    with written_whole(path) as f:
        f.write(text.encode())


def write_json(path: Path, value: dict) -> None:
    write_text(path, json.dumps(value, indent=1))


def check_writable(path: Path) -> None:
    """Raise OSError now if `path` cannot be written (a folder of that name, a read-only place),
    rather than after the minutes of work whose result it is to hold (the experiment scripts)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    with open(path, "a"):
        pass
    if not existed:
        path.unlink()
