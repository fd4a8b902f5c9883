"""Terminal facts: is a stream a TTY, may we use colour, prompt, or draw progress.

Tests monkeypatch `is_tty` to pretend to be on a terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def color_enabled(stream=None) -> bool:
    """Off when NO_COLOR is set, TERM=dumb, or the stream is not a terminal (clig.dev)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    return is_tty(stream if stream is not None else sys.stdout)


def can_prompt() -> bool:
    return is_tty(sys.stdin) and is_tty(sys.stderr)


def progress(items: Iterable[T], *, length: int | None = None, label: str = "") -> Iterator[T]:
    """A progress bar on stderr, drawn only when stderr is a terminal."""
    import click

    stderr = sys.stderr
    if not is_tty(stderr):
        yield from items
        return
    with click.progressbar(items, length=length, label=label, file=stderr) as bar:
        yield from bar
