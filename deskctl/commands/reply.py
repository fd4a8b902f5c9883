"""`deskctl reply`: answer the contact on the conversation's channel."""

from __future__ import annotations

import os

import click

from deskctl.commands import _complete
from deskctl.commands._options import emit, output_options
from deskctl.errors import UsageError
from deskctl.output import Column, notice, warn
from deskctl.services.conversations.read_state import unread_latest
from deskctl.services.conversations.selection import parse_conversation_id
from deskctl.services.outbound import replies as outbound


def _columns():
    return [Column("id", "int"), Column("message_id", "int"), Column("channel"), Column("to"),
            Column("cc", "list"), Column("bcc", "list"), Column("subject"), Column("attachments", "list"),
            Column("queued", "bool"), Column("external_id")]


@click.command()
@click.argument("conversation_id", metavar="ID")
@click.argument("text", required=False)
@click.option("--template", "template_name", metavar="NAME", shell_complete=_complete.templates, help="Send this saved reply, fields filled in.")
@click.option("--file", "file_", type=click.File("r", encoding="utf-8"), metavar="F",
              help="Read the reply text from this file.")
@click.option("--cc", multiple=True, metavar="A", help="Copy to this address (email; repeatable).")
@click.option("--bcc", multiple=True, metavar="A", help="Blind copy to this address (email; repeatable).")
@click.option("--attach", "attach", multiple=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, readable=True),
              help="Attach this file (repeatable).")
@click.option("--via", type=click.Choice(["email"]), default=None,
              help="Answer a chat/SMS/social conversation by email, to the contact's address, "
                   "in the same conversation.")
@output_options
@click.pass_obj
def reply(app, conversation_id, text, template_name, file_, cc, bcc, attach, via):
    """Reply to the contact: TEXT, --template NAME, --file F, or `-` to read stdin.

    Email conversations (and --via email) get a real email through the outbox; other
    channels go through their `delivery:` connector (command or webhook), both delivered
    by the `notify` job. A channel without delivery keeps the reply in the conversation
    only, and says so on stderr."""

    cid = parse_conversation_id(conversation_id)
    if (text is not None) + (template_name is not None) + (file_ is not None) != 1:
        raise UsageError("give the reply as TEXT, --template NAME, --file F or - (exactly one)")
    if file_ is not None:
        text = file_.read()
    elif text == "-":
        text = click.open_file("-", "r").read()
    files = []
    for path in attach:
        with open(path, "rb") as fh:
            files.append((os.path.basename(path), fh.read()))

    with app.transaction() as session:
        actor = app.actor(session)
        unread = unread_latest(session, actor.id, cid)
        record = outbound.reply(session, actor, cid, now=app.now(), settings=app.settings,
                                text=text, template=template_name, cc=cc, bcc=bcc, attachments=files,
                                via=via)
    emit(app, [record], _columns())
    if unread is not None:
        # Webex's "you are not replying to the latest email" (SPEC §10): on stderr, always.
        warn(f"you have not read the latest message on #{cid} (received {unread.isoformat()}): "
             f"`deskctl show {cid}` first")
    if not record["queued"]:
        # SPEC §11: said every time, not only on a terminal: the contact gets nothing.
        notice(f"#{cid}: no delivery is configured for {record['channel']}: the reply is stored in the "
               f"conversation only, not sent (set delivery.{record['channel']} in the configuration, or "
               "answer with --via email)")
        return
    notice(f"replied on #{cid} (queued for "
           + ("email delivery)" if record["channel"] == "email" else f"delivery on {record['channel']})"))
