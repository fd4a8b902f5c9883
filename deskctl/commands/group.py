"""`deskctl group` and `deskctl location`: queues and sites."""

from __future__ import annotations

import click

from deskctl.commands import _complete
from deskctl.commands._options import emit, output_options
from deskctl.output import Column, notice
from deskctl.services.directory import staff as directory


def _group_columns():
    return [Column("id", "int"), Column("name"), Column("location"), Column("members", "int")]


def _location_columns():
    return [Column("id", "int"), Column("name"), Column("groups", "int"), Column("users", "int")]


def _change_group(app, name: str, change, done: str) -> None:
    """Run `change(session, actor)` in one transaction, then print the group's record
    as it is after the change, and `done` on stderr."""
    with app.transaction() as session:
        change(session, app.actor(session))
        rows = directory.list_groups(session, name=name)
    emit(app, rows, _group_columns())
    notice(done)


@click.group()
def group():
    """Groups (queues, teams)."""


@group.command("add")
@click.argument("name")
@click.option("--location", metavar="L", shell_complete=_complete.locations,
              help="The location the group belongs to.")
@output_options
@click.pass_obj
def group_add(app, name, location):
    """Add a group; prints its record."""
    _change_group(app, name, lambda session, actor: directory.add_group(session, actor, name, location, app.now()),
                  f"added group {name}")


@group.command("list")
@output_options
@click.pass_obj
def group_list(app):
    """List groups with their member counts."""
    with app.read() as session:
        app.actor(session)
        rows = directory.list_groups(session)
    emit(app, rows, _group_columns())


@group.command("add-member")
@click.argument("group_name", metavar="GROUP", shell_complete=_complete.groups)
@click.argument("handle", shell_complete=_complete.users)
@output_options
@click.pass_obj
def add_member(app, group_name, handle):
    """Add a user to a group; prints the group's record."""
    _change_group(app, group_name,
                  lambda session, actor: directory.add_member(session, actor, group_name, handle),
                  f"added {handle} to {group_name}")


@group.command("remove-member")
@click.argument("group_name", metavar="GROUP", shell_complete=_complete.groups)
@click.argument("handle", shell_complete=_complete.users)
@output_options
@click.pass_obj
def remove_member(app, group_name, handle):
    """Remove a user from a group; prints the group's record."""
    _change_group(app, group_name,
                  lambda session, actor: directory.remove_member(session, actor, group_name, handle),
                  f"removed {handle} from {group_name}")


@click.group()
def location():
    """Locations (sites, countries)."""


@location.command("add")
@click.argument("name")
@output_options
@click.pass_obj
def location_add(app, name):
    """Add a location; prints its record."""
    with app.transaction() as session:
        directory.add_location(session, app.actor(session), name, app.now())
        rows = directory.list_locations(session, name=name)
    emit(app, rows, _location_columns())
    notice(f"added location {name}")


@location.command("list")
@output_options
@click.pass_obj
def location_list(app):
    """List locations."""
    with app.read() as session:
        app.actor(session)
        rows = directory.list_locations(session)
    emit(app, rows, _location_columns())
