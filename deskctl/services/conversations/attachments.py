"""Attachments of a conversation: listing them and copying their bytes out (SPEC §12).

The bytes live content-addressed under attachments_dir (see outbound.store_attachment);
the `attachments` rows hold the name the sender gave, the type, the size and the sha256.
A stored name is never trusted as a file name: `file` is a safe base name, unique
within the conversation, and the only name `save` writes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select

from deskctl.errors import Conflict, NotFound, UsageError
from deskctl.models import Attachment, Conversation, Message
from deskctl.services.files import default_file_mode, move_into_place, write_error
from deskctl.services.outbound.replies import attachment_path

CHUNK = 1 << 20
# Room under the usual 255-byte NAME_MAX for a "-NN" suffix.
MAX_NAME_BYTES = 200
_SEPARATORS = re.compile(r".*[/\\]")


def safe_name(name: str | None, fallback: str) -> str:
    """A name that is one plain file in a directory: the last path component, control
    and invisible format characters (bidi overrides, zero-width) replaced by `_`, no
    leading dot or blank, no trailing dot or blank, at most MAX_NAME_BYTES of UTF-8;
    `fallback` when nothing is left."""
    base = _SEPARATORS.sub("", name or "")
    base = "".join("_" if unicodedata.category(ch) in ("Cc", "Cf", "Cs") else ch for ch in base)
    base = base.lstrip(". \t").rstrip(". \t")
    if not base:
        return fallback
    if len(base.encode("utf-8")) > MAX_NAME_BYTES:
        stem, ext = _split_ext(base)
        room = MAX_NAME_BYTES - len(ext.encode("utf-8"))
        base = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(". \t") + ext
    return base or fallback


def _split_ext(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 16:
        return name, ""
    return stem, "." + ext


def _unique(name: str, taken: set[str]) -> str:
    """`name`, else `stem-2.ext`, `stem-3.ext`...; compared case-insensitively so that
    two files stay two on a case-insensitive file system."""
    candidate, n = name, 1
    stem, ext = _split_ext(name)
    while candidate.casefold() in taken:
        n += 1
        candidate = f"{stem}-{n}{ext}"
    taken.add(candidate.casefold())
    return candidate


def list_attachments(session, conversation_id: int) -> list[dict]:
    """The attachment records of a conversation's messages, in the order of the thread:
    `id`, `message_id`, `name` (as stored), `file` (the name `save` writes),
    `content_type`, `size`, `sha256`. Exit 3 for an unknown conversation."""
    if session.get(Conversation, conversation_id) is None:
        raise NotFound(f"conversation not found: #{conversation_id}")
    rows = session.execute(
        select(Attachment).join(Message, Message.id == Attachment.message_id)
        .where(Message.conversation_id == conversation_id)
        .order_by(Message.created_at, Message.id, Attachment.id)
    ).scalars()
    taken: set[str] = set()
    return [{
        "id": att.id, "message_id": att.message_id, "name": att.filename,
        "file": _unique(safe_name(att.filename, f"attachment-{att.id}"), taken),
        "content_type": att.content_type, "size": att.size, "sha256": att.sha256,
    } for att in rows]


def select_attachments(records: Sequence[dict], conversation_id: int, name: str | None, *,
                       all_: bool) -> list[dict]:
    """The attachments `save` acts on. NAME is a `file` (unique) or a stored `name`
    (every attachment of that name); no NAME and no --all: the only attachment."""
    if name is not None and all_:
        raise UsageError("give either an attachment name or all of them, not both", option="all")
    if all_:
        return list(records)
    if name is None:
        if len(records) == 1:
            return list(records)
        if not records:
            raise NotFound(f"#{conversation_id} has no attachments")
        raise UsageError(f"#{conversation_id} has {len(records)} attachments ({_names(records)}): name one "
                         "or save them all", option="all")
    chosen = [r for r in records if r["file"] == name] or [r for r in records if r["name"] == name]
    if not chosen:
        known = f" (attachments: {_names(records)})" if records else " (it has none)"
        raise NotFound(f"no attachment named {name!r} on #{conversation_id}{known}")
    return chosen


def _names(records: Sequence[dict], most: int = 10) -> str:
    shown = ", ".join(r["file"] for r in records[:most])
    return shown + (", ..." if len(records) > most else "")


def stored_file(settings, record: dict) -> Path:
    """The file holding the attachment's bytes, checked against its sha256 (a missing
    or damaged file is exit 3, before anything is written)."""
    path = attachment_path(settings, record["sha256"])
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        raise NotFound(f"the content of attachment {record['file']!r} is missing from attachments_dir "
                       f"({path})") from None
    if digest.hexdigest() != record["sha256"]:
        raise NotFound(f"the content of attachment {record['file']!r} is damaged: {path} does not match "
                       "its sha256")
    return path


def write_to(settings, record: dict, out: BinaryIO) -> None:
    """Copy one attachment's bytes to an open binary stream (`save -o -`)."""
    path = stored_file(settings, record)
    with open(path, "rb") as fh:
        shutil.copyfileobj(fh, out, CHUNK)
    out.flush()


def save_to_directory(settings, records: Sequence[dict], directory: str, *, force: bool = False) -> list[dict]:
    """Write each attachment as DIRECTORY/<file>: every file to a temporary name first,
    then renamed into place. Without `force` an existing file is a conflict (exit 4)
    and nothing is written. Returns the records with `path` added."""
    target_dir = Path(directory)
    if not target_dir.is_dir():
        raise UsageError(f"output directory {directory!r} is not a directory", option="target")
    targets = [(record, target_dir / record["file"]) for record in records]
    if not force:
        existing = [str(path) for _, path in targets if path.exists() or path.is_symlink()]
        if existing:
            raise Conflict(f"file exists: {', '.join(existing)}; overwriting was not asked for", option="force")
    sources = [stored_file(settings, record) for record in records]
    mode = default_file_mode()
    staged: list[tuple[str, Path]] = []
    try:
        for source, (_, path) in zip(sources, targets, strict=True):
            fd, tmp = tempfile.mkstemp(dir=target_dir, prefix=".deskctl-", suffix=".part")
            staged.append((tmp, path))
            with os.fdopen(fd, "wb") as out, open(source, "rb") as fh:
                shutil.copyfileobj(fh, out, CHUNK)
            os.chmod(tmp, mode)
        for tmp, path in staged:
            try:
                move_into_place(tmp, path, replace=force)
            except FileExistsError:
                raise Conflict(f"file exists: {path}; overwriting was not asked for", option="force") from None
    except OSError as exc:
        raise write_error(exc, str(target_dir)) from None
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return [{**record, "path": str(path)} for record, path in targets]
