"""Terminal facts: is a stream a TTY, may we use colour, prompt, or draw progress; how
wide text is on screen, for tables.

Tests monkeypatch `is_tty` to pretend to be on a terminal.
"""

from __future__ import annotations

import os
import re
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


# -- tables --------------------------------------------------------------------------
# Colour codes take no room on screen (the SLA cell carries them on a terminal).
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LEADING_ANSI = re.compile(r"(?:\x1b\[[0-9;]*m)+")


def display_width(text: str) -> int:
    """Columns `text` takes on a terminal: CJK and most emoji take two, combining accents
    none, colour codes none."""
    from wcwidth import wcswidth

    plain = _ANSI.sub("", text)
    width = wcswidth(plain)
    return width if width >= 0 else len(plain)  # a control character: count code points


def truncate(text: str, width: int) -> str:
    """`text` cut to at most `width` display columns, ending with "…" when cut. A coloured
    cell keeps its colour: the codes are set aside, the text cut, the colour reset."""
    if display_width(text) <= width:
        return text
    from wcwidth import wcwidth

    leading = _LEADING_ANSI.match(text)
    colour = leading.group(0) if leading else ""
    kept, used = [], 0
    for char in _ANSI.sub("", text):
        char_width = max(wcwidth(char), 0)
        if used + char_width > width - 1:
            break
        kept.append(char)
        used += char_width
    return f"{colour}{''.join(kept)}…\033[0m" if colour else "".join(kept) + "…"


def table_width(stream=None) -> int | None:
    """The width to fit tables to: the terminal's ($COLUMNS first), or None off a terminal."""
    import shutil

    if not is_tty(stream if stream is not None else sys.stdout):
        return None
    return shutil.get_terminal_size().columns
