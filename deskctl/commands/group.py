"""`deskctl group` and `deskctl location`: queues and sites."""

from __future__ import annotations

import click

from deskctl.commands._options import emit, output_options


def _group_columns():
    from deskctl.output import Column

    return [Column("id", "int"), Column("name"), Column("location"), Column("members", "int")]


def _location_columns():
    from deskctl.output import Column

    return [Column("id", "int"), Column("name"), Column("groups", "int"), Column("users", "int")]


@click.group()
def group():
    """Groups (queues, teams)."""


@group.command("add")
@click.argument("name")
@click.option("--location", metavar="L", help="The location the group belongs to.")
@click.pass_obj
def group_add(app, name, location):
    """Add a group."""
    from deskctl.output import notice
    from deskctl.services import directory

    with app.transaction() as session:
        directory.add_group(session, app.actor(session), name, location, app.now())
    notice(f"added group {name}")


@group.command("list")
@output_options
@click.pass_obj
def group_list(app):
    """List groups with their member counts."""
    from deskctl.services import directory

    with app.read() as session:
        app.actor(session)
        rows = directory.list_groups(session)
    emit(app, rows, _group_columns())


@group.command("add-member")
@click.argument("group_name", metavar="GROUP")
@click.argument("handle")
@click.pass_obj
def add_member(app, group_name, handle):
    """Add a user to a group."""
    from deskctl.output import notice
    from deskctl.services import directory

    with app.transaction() as session:
        directory.add_member(session, app.actor(session), group_name, handle)
    notice(f"added {handle} to {group_name}")


@group.command("remove-member")
@click.argument("group_name", metavar="GROUP")
@click.argument("handle")
@click.pass_obj
def remove_member(app, group_name, handle):
    """Remove a user from a group."""
    from deskctl.output import notice
    from deskctl.services import directory

    with app.transaction() as session:
        directory.remove_member(session, app.actor(session), group_name, handle)
    notice(f"removed {handle} from {group_name}")


@click.group()
def location():
    """Locations (sites, countries)."""


@location.command("add")
@click.argument("name")
@click.pass_obj
def location_add(app, name):
    """Add a location."""
    from deskctl.output import notice
    from deskctl.services import directory

    with app.transaction() as session:
        directory.add_location(session, app.actor(session), name, app.now())
    notice(f"added location {name}")


@location.command("list")
@output_options
@click.pass_obj
def location_list(app):
    """List locations."""
    from deskctl.services import directory

    with app.read() as session:
        app.actor(session)
        rows = directory.list_locations(session)
    emit(app, rows, _location_columns())
