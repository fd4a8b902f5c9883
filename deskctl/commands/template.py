"""`deskctl template`: saved replies (team collection or personal)."""

from __future__ import annotations

import click

from deskctl.commands import _complete
from deskctl.commands._options import emit, output_options
from deskctl.errors import UsageError
from deskctl.output import Column, notice
from deskctl.services.outbound import templates


def _columns():
    return [Column("id", "int"), Column("name"), Column("scope"), Column("owner"), Column("body"),
            Column("created_at", "datetime")]


@click.group()
def template():
    """Saved replies: `{contact.name}`, `{contact.email}`, `{agent.name}`, `{agent.handle}`,
    `{conversation.id}` and `{conversation.subject}` are filled in by `reply --template`."""


@template.command("add")
@click.argument("name")
@click.argument("body", required=False)
@click.option("--file", "file_", type=click.File("r", encoding="utf-8"), metavar="F",
              help="Read the body from this file.")
@click.option("--personal", is_flag=True, help="Only for you (team templates need supervisor or admin).")
@output_options
@click.pass_obj
def add(app, name, body, file_, personal):
    """Add a saved reply: BODY, --file F, or `-` to read it from stdin."""
    if (body is not None) + (file_ is not None) != 1:
        raise UsageError("give the body as BODY, --file F or - (exactly one)")
    if file_ is not None:
        body = file_.read()
    elif body == "-":
        body = click.open_file("-", "r").read()
    with app.transaction() as session:
        record = templates.add(session, app.actor(session), name=name, body=body, personal=personal,
                               now=app.now())
    emit(app, [record], _columns())


@template.command("list")
@click.option("--personal", is_flag=True, help="Only your personal templates.")
@output_options
@click.pass_obj
def list_(app, personal):
    """List the templates you can use: the team's and your own."""
    with app.read() as session:
        records = templates.visible(session, app.actor(session), personal_only=personal)
    emit(app, records, _columns())


@template.command("show")
@click.argument("name", shell_complete=_complete.templates)
@output_options
@click.pass_obj
def show(app, name):
    """Show one template (your personal one if it shadows a team one)."""
    with app.read() as session:
        record = templates.show(session, app.actor(session), name)
    if app.output_format() == "table":
        click.echo(record["body"].rstrip("\n"))
        return
    emit(app, [record], _columns())


@template.command("delete")
@click.argument("name", shell_complete=_complete.templates)
@click.option("--personal", is_flag=True, help="Delete your personal template, not the team one.")
@click.pass_obj
def delete(app, name, personal):
    """Delete a saved reply (team templates need supervisor or admin)."""
    with app.transaction() as session:
        record = templates.delete(session, app.actor(session), name, personal=personal)
    notice(f"deleted {record['scope']} template {record['name']}")
