"""Reading what outsiders send, in bounded memory (SPEC §13 "Size caps").

Every input (one mail on stdin or in a file, each message of an mbox or a Maildir, each
JSON line) goes through a `Collector`: past `limits.message_bytes` its bytes stay in a
file in the quarantine folder and the reader gets a `Spilled` in place of the bytes. An
input is therefore never held in memory beyond the cap, whatever its size, and it is
never lost.

The caps on a mail's header block, recipients and subject are checked here too, on the
raw header text, before the email package parses anything (its header parser is slow
on huge headers: a 2 MB Cc took minutes).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20
# Above this an input being read is kept in a temporary file rather than in memory.
MEMORY_BYTES = 1 << 20
# What a Spilled keeps in memory: enough to show the headers and find the Message-ID.
HEAD_BYTES = 64 << 10
_MBOXRD_QUOTED = re.compile(rb"^>(>*From )")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_RECIPIENT_HEADERS = re.compile(rb"(?im)^(?:resent-)?(?:to|cc|bcc)[ \t]*:(.*(?:\r?\n[ \t].*)*)")
_SUBJECT = re.compile(rb"(?im)^subject[ \t]*:(.*(?:\r?\n[ \t].*)*)")
_QUOTED = re.compile(rb'"(?:[^"\\]|\\.)*"')


@dataclass(frozen=True)
class Spilled:
    """An input over a size cap: its bytes are in `path` (named by their SHA-256), not in
    memory. `head` is the first HEAD_BYTES of it."""

    path: Path
    size: int
    head: bytes
    reason: str


def quarantine_dir(settings) -> Path:
    """Where over-cap inputs are kept: beside the attachments, which are written by the
    same ingest and so are known to be writable by it."""
    return Path(settings.attachments_dir) / "quarantine"


class Collector:
    """Bytes of one input, added piece by piece. Up to MEMORY_BYTES they stay in memory;
    a bigger input goes to a temporary file in the quarantine folder as it comes, and is
    read back in one piece at the end only if it fits the cap. So an oversized input
    costs no more memory than a small one, and an accepted one its size once."""

    def __init__(self, settings, cap: int | None = None):
        self._settings = settings
        self._cap = settings.limits.message_bytes if cap is None else cap
        self._buffer = io.BytesIO()
        self._file: tuple[int, str, hashlib._Hash] | None = None  # (fd, temp path, sha256) once on disk
        self._size = 0
        self._head = b""

    def add(self, data: bytes) -> None:
        if not data:
            return
        self._size += len(data)
        file = self._file
        if file is None:
            if self._size <= min(self._cap, MEMORY_BYTES):
                self._buffer.write(data)
                return
            file = self._to_disk()
        if len(self._head) < HEAD_BYTES:
            self._head += data[:HEAD_BYTES - len(self._head)]
        fd, _tmp, digest = file
        digest.update(data)
        _write_all(fd, data)

    def _to_disk(self) -> tuple[int, str, hashlib._Hash]:
        folder = quarantine_dir(self._settings)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        digest = hashlib.sha256()
        self._file = (fd, tmp, digest)
        kept = self._buffer.getbuffer()
        self._head = bytes(kept[:HEAD_BYTES])
        digest.update(kept)
        _write_all(fd, kept)
        del kept
        self._buffer = io.BytesIO()
        return self._file

    def finish(self, reason: str | None = None) -> bytes | Spilled:
        """The bytes, or a Spilled when they are over the cap (or `reason` says the
        input must be kept on disk anyway)."""
        file = self._file
        if file is None:
            if reason is None:
                return self._buffer.getvalue()
            file = self._to_disk()
        fd, tmp, digest = file
        self._file = None
        if reason is None and self._size <= self._cap:
            try:
                with open(tmp, "rb") as fh:
                    return fh.read()
            finally:
                os.close(fd)
                os.unlink(tmp)
        try:
            os.fsync(fd)  # the quarantine row will say the bytes are here: make it true
        finally:
            os.close(fd)
        target = quarantine_dir(self._settings) / f"{digest.hexdigest()}.raw"
        os.replace(tmp, target)  # same bytes, same name: a re-delivery overwrites itself
        return Spilled(target, self._size, self._head,
                       reason or f"{self._size} bytes: over limits.message_bytes ({self._cap} bytes)")

    def discard(self) -> None:
        if self._file is not None:
            fd, tmp, _ = self._file
            os.close(fd)
            os.unlink(tmp)
            self._file = None


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def spill(settings, raw: bytes, reason: str) -> Spilled:
    """Bytes already in memory that broke a cap: kept on disk, like oversized ones."""
    collector = Collector(settings, cap=0)
    collector.add(raw)
    spilled = collector.finish(reason)
    assert isinstance(spilled, Spilled)  # a reason always keeps the bytes on disk
    return spilled


def read_one(stream, settings) -> bytes | Spilled:
    """A whole stream (one mail on stdin or in a file)."""
    collector = Collector(settings)
    try:
        while chunk := stream.read(CHUNK):
            collector.add(chunk)
    except BaseException:
        collector.discard()
        raise
    return collector.finish()


def read_path(path, settings) -> bytes | Spilled:
    with open(path, "rb") as stream:
        return read_one(stream, settings)


def mbox_messages(stream, settings) -> Iterator[bytes | Spilled]:
    """The messages of an mbox, as the stdlib's `mailbox.mbox` splits it (a message
    starts at a line beginning "From "; the From_ line is left out, and so is one blank
    line before the next From_ line or the end), with mboxrd quoting undone (">From "
    back to "From "). Lines are read in pieces of at most CHUNK bytes, so a message
    without line breaks is bounded too."""
    current: Collector | None = None
    at_line_start = True
    blank_pending = False  # a blank line: dropped if a From_ line or the end follows
    try:
        while True:
            piece = stream.readline(CHUNK)
            if not piece:
                break
            line_start, at_line_start = at_line_start, piece.endswith(b"\n")
            if line_start and piece.startswith(b"From "):
                if current is not None:
                    yield current.finish()
                current = Collector(settings)
                blank_pending = False
                while not at_line_start:  # the rest of an overlong From_ line
                    piece = stream.readline(CHUNK)
                    if not piece:
                        break
                    at_line_start = piece.endswith(b"\n")
                continue
            if current is None:  # text before the first From_ line is not a message
                continue
            if blank_pending:
                current.add(b"\n")
            blank_pending = line_start and piece == b"\n"
            if blank_pending:
                continue
            if line_start and piece.startswith(b">"):
                piece = _MBOXRD_QUOTED.sub(rb"\1", piece, count=1)
            current.add(piece)
        if current is not None:
            yield current.finish()
            current = None
    finally:
        if current is not None:
            current.discard()


def jsonl_lines(stream, settings) -> Iterator[tuple[int, bytes | Spilled]]:
    """(line number, bytes without the line break) for each non-blank line; a line over
    limits.message_bytes comes as a Spilled."""
    number = 0
    while True:
        collector = Collector(settings)
        piece = b""
        try:
            while (piece := stream.readline(CHUNK)) and not piece.endswith(b"\n"):
                collector.add(piece)
            collector.add(piece)
        except BaseException:
            collector.discard()
            raise
        data = collector.finish()
        if not piece and not isinstance(data, Spilled) and not data:
            return
        number += 1
        if isinstance(data, Spilled):
            reason = f"line of {data.size} bytes: over limits.message_bytes ({settings.limits.message_bytes} bytes)"
            yield number, Spilled(data.path, data.size, data.head, reason)
        elif data.strip():
            yield number, data.rstrip(b"\r\n")
        if not piece:
            return


def maildir_files(path, *, new_only: bool) -> list[tuple[str, Path]]:
    """(key, file) of a Maildir's messages in delivery order (names start with the
    delivery time). The key is the name without the ":2,FLAGS" info, as `mailbox.Maildir`
    has it. `new_only`: only new/ (what `--move` has not handled yet)."""
    root = Path(path)
    found = []
    for sub in ("new",) if new_only else ("new", "cur"):
        folder = root / sub
        if not folder.is_dir():
            continue
        for name in os.listdir(folder):
            if name.startswith("."):
                continue
            found.append((name.split(":", 1)[0], folder / name))
    found.sort(key=lambda item: item[0])
    return found


def seen_name(name: str) -> str:
    """A Maildir file name with the "seen" flag (`name:2,S`, other flags kept)."""
    base, _, info = name.partition(":")
    flags = set(info[2:]) if info.startswith("2,") else set()
    return f"{base}:2,{''.join(sorted(flags | {'S'}))}"


def email_over_limits(raw: bytes, limits) -> str | None:
    """Why a mail breaks a cap on its header block, recipients or subject, else None.
    Read on the raw header text: linear in its size, nothing decoded but the subject."""
    end = _HEADER_END.search(raw, 0, limits.header_bytes + 4)
    header_size = end.start() if end else len(raw)
    if header_size > limits.header_bytes:
        return f"header block over limits.header_bytes ({limits.header_bytes} bytes)"
    head = raw[:header_size]
    # One address has one "@": count them outside quoted display names.
    recipients = sum(_QUOTED.sub(b"", m.group(1)).count(b"@") for m in _RECIPIENT_HEADERS.finditer(head))
    if recipients > limits.recipients:
        return f"{recipients} recipients in To/Cc/Bcc: over limits.recipients ({limits.recipients})"
    subject = _SUBJECT.search(head)
    if subject is not None and len(subject.group(1)) > limits.subject_chars:
        chars = _decoded_length(subject.group(1))
        if chars > limits.subject_chars:
            return f"subject of {chars} characters: over limits.subject_chars ({limits.subject_chars})"
    return None


def _decoded_length(value: bytes) -> int:
    """Characters of a raw Subject once unfolded and its encoded-words decoded."""
    from email.header import decode_header, make_header

    text = re.sub(rb"\r?\n", b"", value).decode("utf-8", "replace").strip()
    try:
        return len(str(make_header(decode_header(text))))
    except Exception:  # noqa: BLE001 - a broken encoded-word: count it as written
        return len(text)
