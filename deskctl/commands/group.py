"""`deskctl group` and `deskctl location`: queues and sites."""

from __future__ import annotations

import click

from deskctl.commands import _complete
from deskctl.commands._options import emit_change, emit_read, output_options
from deskctl.output import Column
from deskctl.services.directory import staff as directory


def _group_columns():
    return [Column("id", "int"), Column("name"), Column("location"), Column("members", "int")]


def _location_columns():
    return [Column("id", "int"), Column("name"), Column("groups", "int"), Column("users", "int")]


def _change_group(app, name: str, change, done: str) -> None:
    """Run `change(session, actor)` in one transaction, then print the group's record
    as it is after the change, and `done` on stderr."""
    def changed(session, actor):
        change(session, actor)
        return directory.list_groups(session, name=name)

    emit_change(app, _group_columns(), changed, done)


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
    emit_read(app, _group_columns(), lambda session, actor: directory.list_groups(session))


# add-member and remove-member: one command shape over two changes of the membership.
_MEMBERSHIP = (
    ("add-member", directory.add_member, "Add a user to a group; prints the group's record.",
     "added {handle} to {group}"),
    ("remove-member", directory.remove_member, "Remove a user from a group; prints the group's record.",
     "removed {handle} from {group}"),
)


def _membership_command(name: str, change, doc: str, done: str):
    @group.command(name, help=doc)
    @click.argument("group_name", metavar="GROUP", shell_complete=_complete.groups)
    @click.argument("handle", shell_complete=_complete.users)
    @output_options
    @click.pass_obj
    def command(app, group_name, handle):
        _change_group(app, group_name,
                      lambda session, actor: change(session, actor, group_name, handle),
                      done.format(handle=handle, group=group_name))

    return command


add_member, remove_member = (_membership_command(*row) for row in _MEMBERSHIP)


@click.group()
def location():
    """Locations (sites, countries)."""


@location.command("add")
@click.argument("name")
@output_options
@click.pass_obj
def location_add(app, name):
    """Add a location; prints its record."""
    def added(session, actor):
        directory.add_location(session, actor, name, app.now())
        return directory.list_locations(session, name=name)

    emit_change(app, _location_columns(), added, f"added location {name}")


@location.command("list")
@output_options
@click.pass_obj
def location_list(app):
    """List locations."""
    emit_read(app, _location_columns(), lambda session, actor: directory.list_locations(session))
