"""`deskctl contact add/find/show/set` and `deskctl attach ID --contact REF`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from deskctl import output, term
from deskctl.commands._options import LIMIT, emit, output_options
from deskctl.db.engine import truncate_wal
from deskctl.errors import UsageError
from deskctl.output import Column, notice
from deskctl.services.conversations.selection import parse_conversation_id
from deskctl.services.directory import contacts
from deskctl.services.directory.contact_import import import_contacts
from deskctl.services.directory.contacts import get_contact
from deskctl.services.keeping import erasure
from deskctl.services.views.conversation_records import records_for_ids


def _columns():
    return [Column("id", "int"), Column("name"), Column("email"), Column("phone"), Column("account_id"),
            Column("vip", "bool"), Column("attributes"), Column("conversations", "int"),
            Column("created_at", "datetime")]


def _contact_options(func):
    for option in reversed([
        click.option("--name", help="Full name."),
        click.option("--email", metavar="E", help="Email address (unique; matched case-insensitively)."),
        click.option("--phone", metavar="P", help="Phone number."),
        click.option("--account-id", "--account", "account_id", metavar="A", help="Account id in your CRM."),
        click.option("--vip/--no-vip", default=None, help="VIP flag (SLA policies may match it)."),
        click.option("--attr", "attrs", multiple=True, metavar="KEY=VALUE",
                     help="Free attribute (repeatable); KEY= with no value removes it."),
    ]):
        func = option(func)
    return func


@click.group()
def contact():
    """Contacts (the customers). REF is a contact id or an email address."""


@contact.command("add")
@_contact_options
@output_options
@click.pass_obj
def add(app, name, email, phone, account_id, vip, attrs):
    """Add a contact (at least one of --name, --email, --phone, --account-id)."""
    with app.transaction() as session:
        actor = app.actor(session)
        record = contacts.add_contact(session, actor, name=name, email=email, phone=phone, account_id=account_id,
                                      vip=bool(vip), attrs=attrs, now=app.now())
    emit(app, [record], _columns())


@contact.command("find")
@click.argument("query", required=False)
@click.option("--email", metavar="E", help="Exactly this email address.")
@click.option("--phone", metavar="P", help="Exactly this phone number.")
@click.option("--account-id", "--account", "account_id", metavar="A", help="Exactly this account id.")
@click.option("--vip/--no-vip", default=None, help="Only VIPs / only non-VIPs.")
@click.option("--attr", "attrs", multiple=True, metavar="KEY=VALUE",
              help="Has this attribute value (repeatable; KEY= means the attribute is absent).")
@click.option("--limit", type=LIMIT, help="At most N contacts.")
@output_options
@click.pass_obj
def find(app, query, email, phone, account_id, vip, attrs, limit):
    """Find contacts: QUERY is text in the name, email, phone or account id (case-insensitive).
    With nothing given, every contact is listed."""
    with app.read() as session:
        app.actor(session)
        rows = contacts.find_contacts(session, query=query, email=email, phone=phone, account_id=account_id,
                                      vip=vip, attrs=attrs, limit=limit)
        count = emit(app, rows, _columns())
    if count == 0:
        output.notice("no contacts matched")


@contact.command("show")
@click.argument("ref", metavar="REF")
@output_options
@click.pass_obj
def show(app, ref):
    """Show one contact (REF: id or email)."""
    with app.read() as session:
        app.actor(session)
        record = contacts.record_for(session, contacts.get_contact(session, ref))
    emit(app, [record], _columns())


@contact.command("set")
@click.argument("ref", metavar="REF")
@_contact_options
@output_options
@click.pass_obj
def set_(app, ref, name, email, phone, account_id, vip, attrs):
    """Change a contact. An empty --email/--phone/--account-id clears it."""
    with app.transaction() as session:
        actor = app.actor(session)
        record = contacts.set_contact(session, actor, ref, name=name, email=email, phone=phone,
                                      account_id=account_id, vip=vip, attrs=attrs, now=app.now(),
                                      settings=app.settings)
    emit(app, [record], _columns())


@click.command()
@click.argument("conversation_id", metavar="ID")
@click.option("--contact", "ref", required=True, metavar="REF",
              help="Contact id or email; an unknown email creates the contact.")
@click.option("--name", help="Name for the contact when --contact creates it.")
@click.option("--dry-run", "-n", is_flag=True, help="Show what would change; change nothing.")
@output_options
@click.pass_obj
def attach(app, conversation_id, ref, name, dry_run):
    """Attach a conversation to a contact (an existing one, or a new one by email).

    Prints the conversation record. Attaching the contact it already has is a no-op
    (exit 0, notice on stderr)."""
    cid = parse_conversation_id(conversation_id)
    with app.transaction(dry_run=dry_run) as session:
        actor = app.actor(session)
        contact, changed, created = contacts.attach(session, actor, cid, ref, now=app.now(),
                                                    settings=app.settings, name=name)
        records = records_for_ids(session, [cid])
    emit(app, records, output.conversation_columns(app.output_format() != "table"))
    if created:
        output.notice(f"{'would create' if dry_run else 'created'} contact #{contact['id']} <{contact['email']}>")
    if changed:
        output.notice(f"{'would attach' if dry_run else 'attached'} #{cid} to contact #{contact['id']}")
    else:
        output.notice(f"#{cid} is already attached to contact #{contact['id']}; nothing changed")


@contact.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True), metavar="FILE.csv")
@click.option("-n", "--dry-run", is_flag=True, help="Check every line and print the summary; change nothing.")
@click.pass_obj
def import_(app, file, dry_run):
    """Create or update contacts from a CSV file (`-` reads stdin); supervisor or admin.

    \b
    The header row names the columns: email (required), name, phone, account, vip
    (true/false, yes/no, 1/0), in any order; any other column is a free attribute.
    Contacts are matched by email, case-insensitively. An empty cell leaves the known
    value as it is. All or nothing: every bad line is reported with its number and
    nothing is imported (exit 65). A summary line goes to stderr."""
    if file == "-":
        data, source = sys.stdin.buffer.read(), "stdin"
    else:
        data, source = Path(file).read_bytes(), file
    with app.transaction(dry_run=dry_run) as session:
        actor = app.actor(session)
        result = import_contacts(session, actor, data, source=source, now=app.now(), settings=app.settings,
                                 dry_run=dry_run)
    unchanged = f", {result.unchanged} unchanged" if result.unchanged else ""
    verb = "would import" if dry_run else "imported"
    output.notice(f"{verb} {result.total} contact{'s' if result.total != 1 else ''}: "
                  f"{result.created} created, {result.updated} updated{unchanged}")


@contact.command("forget")
@click.argument("ref", metavar="REF")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation (required off a terminal).")
@output_options
@click.pass_obj
def forget(app, ref, yes):
    """Erase a contact (admin): the right to erasure (SPEC §12).

    \b
    The contact's name, email, phone, account and attributes, the texts, HTML and
    attachments of their conversations' messages, notes, and quarantined mails from
    their address become `[erased]`. Conversations, events and report counts stay;
    each conversation gets an `erased` event. Asks for confirmation on a terminal;
    elsewhere --yes is required."""
    with app.read() as session:
        contact = get_contact(session, ref)
        label = f"contact {contact.id} ({contact.email or contact.name})"
    if not yes:
        if not term.can_prompt():
            raise UsageError(f"erasing {label} cannot be undone: pass --yes to confirm")
        if not click.confirm(f"Erase {label} and the content of their conversations? This cannot be undone",
                             err=True, default=False):
            raise UsageError("cancelled: nothing changed")
    with app.transaction() as session:
        record = erasure.forget_contact(session, app.actor(session), get_contact(session, ref), now=app.now(),
                                        settings=app.settings)

    truncate_wal(app.engine)

    emit(app, [record], [Column(name, "int") for name in ("contact_id", "conversations", "messages", "attachments",
                                                          "files", "notes", "quarantined")], id_key="contact_id")
    notice(f"erased contact {record['contact_id']} and {record['conversations']} conversations")
