"""Terminal facts: is a stream a TTY, may we use colour, prompt, or draw progress; how
wide text is on screen, for tables.

Tests monkeypatch `is_tty` to pretend to be on a terminal.
"""

from __future__ import annotations

import os
import re
import sys
import time
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


# Work shorter than this shows no bar: a bar that flashes and vanishes is noise.
PROGRESS_AFTER_S = 2.0


def _progress_after() -> float:
    """DESKCTL_PROGRESS_AFTER (seconds) overrides the delay: 0 shows every bar at once,
    `inf` none; a value that is not a number is ignored."""
    try:
        return float(os.environ.get("DESKCTL_PROGRESS_AFTER", PROGRESS_AFTER_S))
    except ValueError:
        return PROGRESS_AFTER_S


class Progress:
    """The progress of long work, drawn on stderr: only when stderr is a terminal and
    only once the work has lasted PROGRESS_AFTER_S. Call it with (done, total) as the
    work advances; services receive it as a plain callable and never import click.

        with Progress("generating") as progress:
            service.build(..., progress=progress)
    """

    def __init__(self, label: str):
        self.label = label
        self.after = _progress_after()
        self.started = time.monotonic()
        self.started_wall = time.time()
        self.enabled = is_tty(sys.stderr)
        self._bar = None

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            if time.monotonic() - self.started < self.after:
                return
            import click

            # A percentage when the total is known (totals may count steps, not items).
            self._bar = click.progressbar(iter(()), length=total, label=self.label, file=sys.stderr,
                                          show_pos=total is None, show_percent=total is not None)
            self._bar.start = self.started_wall  # the ETA counts the time before the bar appeared
            self._bar.__enter__()
        self._bar.length = total
        self._bar.update(done - self._bar.pos)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def progress(items: Iterable[T], *, length: int | None = None, label: str = "") -> Iterator[T]:
    """Iterate over `items` with a Progress (length: len(items) when not given)."""
    if length is None and hasattr(items, "__len__"):
        length = len(items)
    with Progress(label) as bar:
        for done, item in enumerate(items, start=1):
            yield item
            bar(done, length)


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
