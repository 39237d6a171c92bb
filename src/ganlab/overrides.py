"""Command-line overrides read and written as Hydra's grammar has them, so that a path with a
space, a quote or a non-ASCII letter means the same to ganlab's early checks as to Hydra, and the
commands ganlab suggests in its messages can be pasted into a shell as they are."""

from __future__ import annotations

import re
import shlex
from typing import Any, Iterator

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import OverrideParseException
from omegaconf import DictConfig, OmegaConf

_parser = OverridesParser.create()


def parsed(argv: list[str]) -> Iterator[Override]:
    """Each override in argv as Hydra reads it; Hydra's own start-up reports what it cannot
    read, so those are left out here."""
    for arg in argv:
        if arg.startswith("-") or ("=" not in arg and not arg.startswith("~")):
            continue  # -m, --cfg job, ...
        try:
            (override,) = _parser.parse_overrides([arg])
        except OverrideParseException:
            continue
        yield override


def task_overrides(hydra: DictConfig) -> list[str]:
    """The command line's overrides as Hydra keeps them (hydra.overrides.task), as typed: read
    through OmegaConf, a value's ${...} was resolved, and `optimizer.d.lr=${nope}` failed there,
    before the run's config named the key."""
    return OmegaConf.to_container(hydra.overrides.task, resolve=False)


def values_given(argv: list[str]) -> dict[str, Any]:
    """key -> value of each `key=value` in argv as Hydra reads it (quotes and escapes undone)."""
    return {override.key_or_group: override.value() for override in parsed(argv)
            if not override.is_delete() and not override.is_sweep_override()}


def as_typed(key: str, value: str) -> str:
    """`key=value` as a user types it in a shell: quoted for Hydra and for the shell only where
    they need it (`resume=runs/a` stays as it is; `'resume="runs/my run"'`)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    for candidate in (f"{key}={value}", f'{key}="{value}"', f"{key}='{value}'", f'{key}="{escaped}"'):
        read = values_given([candidate]).get(key)
        if isinstance(read, str) and read == value:
            return shlex.quote(candidate)
    return shlex.quote(f"{key}={value}")


def unreadable(error: OverrideParseException) -> str:
    """A one-line message for an override Hydra's grammar cannot read, with the likely fix: most
    often a value (a path) holding a character that the grammar reserves or does not know."""
    key, equals, value = error.override.partition("=")
    message = str(error.message)
    first_line = message.splitlines()[0]
    caret = re.search(r"\n( *)\^", message)
    grammar = re.search(r"https://\S+", message)
    grammar = grammar[0] if grammar else "https://hydra.cc/docs/advanced/override_grammar/basic/"
    column = len(caret[1]) - first_line.index(error.override) if caret and error.override in first_line else None
    if not equals or not re.fullmatch(r"[+~]{0,2}[\w./@-]+", key) or (column is not None and column <= len(key)):
        return f"Hydra cannot read the override {error.override!r}; see its grammar: {grammar}"
    at = f" at {error.override[column]!r}" if column is not None and column < len(error.override) else ""
    if re.search(r"\s[+~]{0,2}[\w./@-]+=", value):  # "a=1 b=2": one shell word
        fix = f"it holds more than one override; give each as an argument of its own: {key}={value.split()[0]} ..."
    elif value.startswith("~"):  # the shell expands ~ after key= only where key is a plain name
        fix = f"write your home directory as $HOME: {key}=$HOME{value[1:]}"
    else:
        fix = f"if it is meant as text (a path, say), quote the value for Hydra: {as_typed(key, value)}"
    return f"Hydra cannot read the override {error.override!r}{at}; {fix} (Hydra's grammar: {grammar})"
