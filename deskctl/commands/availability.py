"""`deskctl availability` and `deskctl login`."""

from __future__ import annotations

import click

from deskctl.commands import _complete
from deskctl.commands._options import emit, output_options
from deskctl.output import Column
from deskctl.services.conversations import routing
from deskctl.services.directory import staff as directory


def _columns():
    return [Column("handle"), Column("availability"), Column("default_availability")]


@click.group(invoke_without_command=True)
@click.option("--user", "handle", metavar="H", shell_complete=_complete.users,
              help="Another user (supervisor or admin).")
@click.option("--default", "default", metavar="STATE", shell_complete=_complete.availability_states,
              help="Set the default applied at the next `login`.")
@output_options
@click.pass_context
def availability(ctx, handle, default):
    """Show availability, or set it with `availability set STATE`."""
    ctx.meta["availability.user"] = handle
    ctx.meta["availability.default"] = default
    if ctx.invoked_subcommand is None:
        _apply(ctx.obj, handle, None, default)


@availability.command("set")
@click.argument("state", shell_complete=_complete.availability_states)
@click.option("--user", "handle", metavar="H", shell_complete=_complete.users,
              help="Another user (supervisor or admin).")
@click.option("--default", "default", metavar="STATE", shell_complete=_complete.availability_states,
              help="Also set the default availability.")
@output_options
@click.pass_context
def set_(ctx, state, handle, default):
    """Set availability: available, away, offline, or a state from config."""
    handle = handle or ctx.meta.get("availability.user")
    default = default or ctx.meta.get("availability.default")
    _apply(ctx.obj, handle, state, default)


def _apply(app, handle, state, default):
    with app.transaction(dry_run=state is None and default is None) as session:
        actor = app.actor(session)
        if state is None and default is None:
            user = directory.availability_of(session, actor, handle)
        else:
            user = directory.set_availability(session, actor, handle, state, default=default,
                                              states=app.settings.availability_states)
            _route_if_available(app, session, user)
        record = {"handle": user.handle, "availability": user.availability,
                  "default_availability": user.default_availability}
    emit(app, [record], _columns(), id_key="handle")


@click.command()
@output_options
@click.pass_obj
def login(app):
    """Start a shift: availability becomes your default availability."""
    with app.transaction() as session:
        user = directory.login(session, app.actor(session))
        _route_if_available(app, session, user)
        record = {"handle": user.handle, "availability": user.availability,
                  "default_availability": user.default_availability}
    emit(app, [record], _columns(), id_key="handle")


def _route_if_available(app, session, user) -> None:
    """SPEC §10: an agent who becomes available gets waiting work at once (offer/assign)."""
    if user.availability == "available":
        routing.route_for_agent(session, user.id, now=app.now(), settings=app.settings)
