"""`deskctl attachment list/save`: the files sent with a conversation's messages."""

from __future__ import annotations

import sys

import click

from deskctl import output
from deskctl.commands._options import emit, output_options
from deskctl.errors import UsageError
from deskctl.output import Column
from deskctl.services.conversations import attachments
from deskctl.services.conversations.attachments import list_attachments
from deskctl.services.conversations.selection import parse_conversation_id


def _columns(with_path: bool = False):
    columns = [Column("message_id", "int"), Column("name"), Column("file"), Column("content_type"),
               Column("size", "int"), Column("sha256")]
    return columns + [Column("path")] if with_path else columns


@click.group()
def attachment():
    """Attachments of a conversation's messages (inbound and outbound)."""


@attachment.command("list")
@click.argument("conversation_id", metavar="ID")
@output_options
@click.pass_obj
def list_(app, conversation_id):
    """List a conversation's attachments.

    `name` is the name the sender gave; `file` is the safe, unique name that
    `attachment save` writes (and what --format ids prints)."""
    cid = parse_conversation_id(conversation_id)
    with app.read() as session:
        app.actor(session)
        records = list_attachments(session, cid)
    if not records:
        output.notice(f"#{cid} has no attachments")
    emit(app, records, _columns(), id_key="file")


@attachment.command("save")
@click.argument("conversation_id", metavar="ID")
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Save every attachment of the conversation.")
@click.option("-o", "--output", "target", default=".", show_default=True, metavar="DIR|-",
              help="Directory to write into (it must exist), or - for the bytes of one attachment on stdout.")
@click.option("--force", is_flag=True, help="Overwrite files that already exist in DIR.")
@output_options
@click.pass_obj
def save(app, conversation_id, name, all_, target, force):
    """Save attachments as files: NAME (a `file` or `name` from `attachment list`), --all,
    or, when the conversation has only one, that one.

    Files get safe base names (no directories, no leading dot, no control characters;
    the same name twice becomes name-2.ext). Each file is written to a temporary name
    and renamed into place; an existing file is refused (exit 4) unless --force.
    Prints the saved records with their `path`."""
    cid = parse_conversation_id(conversation_id)
    if target == "-" and all_:
        raise UsageError("-o - writes one attachment to stdout: give its NAME, not --all")
    with app.read() as session:
        app.actor(session)
        records = attachments.list_attachments(session, cid)
    chosen = attachments.select_attachments(records, cid, name, all_=all_)
    if target == "-":
        if len(chosen) > 1:
            raise UsageError(f"{name!r} names {len(chosen)} attachments; -o - writes one: give its file name "
                             f"({', '.join(r['file'] for r in chosen)})")

        attachments.write_to(app.settings, chosen[0], sys.stdout.buffer)
        return
    if not chosen:
        output.notice(f"#{cid} has no attachments")
        return
    saved = attachments.save_to_directory(app.settings, chosen, target, force=force)
    emit(app, saved, _columns(with_path=True), id_key="path")
    output.notice(f"saved {len(saved)} attachment{'s' if len(saved) != 1 else ''} to {target}")
