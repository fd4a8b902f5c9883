"""`deskctl note ID TEXT` (also `--file F`, `-`), `note edit NOTE_ID TEXT`,
`note delete NOTE_ID`: internal notes, never visible to the contact."""

from __future__ import annotations

import click

from deskctl.commands._options import emit, output_options
from deskctl.errors import NotFound, UsageError
from deskctl.output import Column, notice
from deskctl.services.conversations import notes
from deskctl.services.conversations.selection import MAX_ID, parse_conversation_id


def _columns():
    return [Column("id", "int"), Column("conversation_id", "int"), Column("author"), Column("at", "datetime"),
            Column("text"), Column("updated_at", "datetime"), Column("deleted_at", "datetime")]


class NoteGroup(click.Group):
    """A group whose default action is `add`: `note 12 "text"` means `note add 12 "text"`.

    Only the words `add`, `edit` and `delete` are subcommands; anything else (a
    conversation id such as `12` or `#12`, or an option of `add` such as `--file`) is
    handed to `add`, so an unknown word still fails as a bad conversation id."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["add", *args]
        return super().parse_args(ctx, args)


def _read_text(text: str | None, file_) -> str:
    if (text is not None) == (file_ is not None):
        raise UsageError("give the note as TEXT, --file F or - (exactly one)")
    if file_ is not None:
        return file_.read()
    if text == "-":
        return click.open_file("-", "r").read()
    return text


@click.group(cls=NoteGroup)
def note():
    """Internal notes: `note ID TEXT` adds one (TEXT `-` reads stdin; or --file F);
    `note edit NOTE_ID TEXT` and `note delete NOTE_ID` change one (author or
    supervisor/admin). Every version stays in the audit trail."""


@note.command("add")
@click.argument("conversation_id", metavar="ID")
@click.argument("text", required=False)
@click.option("--file", "file_", type=click.File("r", encoding="utf-8"), metavar="F",
              help="Read the note from this file (`-`: stdin).")
@output_options
@click.pass_obj
def add(app, conversation_id, text, file_):
    """Add an internal note to conversation ID (the default action of `note`)."""
    cid = parse_conversation_id(conversation_id)
    body = _read_text(text, file_)
    with app.transaction() as session:
        record = notes.add_note(session, app.actor(session), cid, body, now=app.now(), settings=app.settings)
    emit(app, [record], _columns(), id_key="conversation_id")

    notice(f"note {record['id']} added to #{cid}")


def _note_id(value: str) -> int:
    text = str(value).strip()
    if not text.isdigit() or len(text) > 18:
        raise UsageError(f"invalid note id {value!r} (expected a number, as printed by `note` or `show`)")
    if int(text) > MAX_ID:  # past the id column's range (int4 on PostgreSQL): cannot exist

        raise NotFound(f"note not found: {text}")
    return int(text)


@note.command("edit")
@click.argument("note_id", metavar="NOTE_ID")
@click.argument("text", required=False)
@click.option("--file", "file_", type=click.File("r", encoding="utf-8"), metavar="F",
              help="Read the new text from this file (`-`: stdin).")
@output_options
@click.pass_obj
def edit(app, note_id, text, file_):
    """Replace the text of note NOTE_ID; the previous text stays in the audit trail."""
    nid = _note_id(note_id)
    body = _read_text(text, file_)
    with app.transaction() as session:
        record, changed = notes.edit_note(session, app.actor(session), nid, body, now=app.now(),
                                          settings=app.settings)
    emit(app, [record], _columns(), id_key="conversation_id")
    notice(f"note {nid} edited" if changed else f"note {nid} already has this text; nothing changed")


@note.command("delete")
@click.argument("note_id", metavar="NOTE_ID")
@output_options
@click.pass_obj
def delete(app, note_id):
    """Delete note NOTE_ID from the thread; its versions stay in the audit trail."""
    nid = _note_id(note_id)
    with app.transaction() as session:
        record = notes.delete_note(session, app.actor(session), nid, now=app.now(), settings=app.settings)
    emit(app, [record], _columns(), id_key="conversation_id")
    notice(f"note {nid} deleted")
