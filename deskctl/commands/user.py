"""`deskctl user`: the directory of agents."""

from __future__ import annotations

import click

from deskctl.commands import _complete
from deskctl.commands._options import emit, output_options
from deskctl.errors import Forbidden
from deskctl.output import Column
from deskctl.services.directory import staff as directory
from deskctl.vocab import ROLES


def _columns():
    return [Column("id", "int"), Column("handle"), Column("name"), Column("email"), Column("role"),
            Column("availability"), Column("location"), Column("groups", "list"), Column("active", "bool")]


@click.group()
def user():
    """Users (agents, supervisors, admins)."""


@user.command("add")
@click.argument("handle")
@click.option("--name", help="Display name.")
@click.option("--email", help="Email address (for notifications).")
@click.option("--role", default="agent", show_default=True, type=click.Choice(ROLES), help="Role.")
@click.option("--location", metavar="L", shell_complete=_complete.locations, help="Location name.")
@click.option("--group", "groups", multiple=True, metavar="G", shell_complete=_complete.groups, help="Group to join (repeatable).")
@output_options
@click.pass_obj
def add(app, handle, name, email, role, location, groups):
    """Add a user. While no admin exists, `--role admin` bootstraps the first one."""
    with app.transaction() as session:
        try:
            actor = app.actor(session)
        except Forbidden:
            actor = None  # allowed only for the bootstrap; add_user decides
        created = directory.add_user(session, actor, handle=handle, name=name, email=email, role=role,
                                     location=location, groups=groups, now=app.now())
        record = directory.user_record(session, created)
    emit(app, [record], _columns())


@user.command("list")
@click.option("--group", metavar="G", shell_complete=_complete.groups, help="Only members of this group.")
@click.option("--role", type=click.Choice(ROLES), help="Only this role.")
@output_options
@click.pass_obj
def list_(app, group, role):
    """List users."""
    with app.read() as session:
        app.actor(session)
        records = [directory.user_record(session, u) for u in directory.list_users(session, group=group, role=role)]
    emit(app, records, _columns())


@user.command("show")
@click.argument("handle", shell_complete=_complete.users)
@output_options
@click.pass_obj
def show(app, handle):
    """Show one user."""
    with app.read() as session:
        app.actor(session)
        record = directory.user_record(session, directory.get_user(session, handle))
    emit(app, [record], _columns())


@user.command("set")
@click.argument("handle", shell_complete=_complete.users)
@click.option("--name")
@click.option("--email")
@click.option("--role", type=click.Choice(ROLES), help="New role.")
@click.option("--location", metavar="L", shell_complete=_complete.locations, help="Location name ('' to clear).")
@click.option("--default-availability", metavar="STATE", shell_complete=_complete.availability_states, help="Availability applied at the next login.")
@click.option("--active/--inactive", default=None, help="Deactivate a user who left (keeps history).")
@output_options
@click.pass_obj
def set_(app, handle, name, email, role, location, default_availability, active):
    """Change a user (admin)."""
    with app.transaction() as session:
        changed = directory.set_user(session, app.actor(session), handle, name=name, email=email, role=role,
                                     location=location, active=active, default_availability=default_availability,
                                     states=app.settings.availability_states)
        record = directory.user_record(session, changed)
    emit(app, [record], _columns())
