"""Shell completion of option and argument values (Click's `shell_complete` callbacks).

Fixed names (statuses, priorities, roles, ...) are completed by their Click types
(click.Choice, clitypes.CommaChoice over deskctl.vocab). Here: job names from the job
registry, channels and availability states from the configuration; groups, users,
locations and templates read from the database. Completion must never get in the way of
typing: any failure (no database yet, unreachable server, bad configuration) completes to
nothing, so the imports stay inside each callback, where `_quietly` catches their failure.
"""

from __future__ import annotations

from deskctl.clitypes import matching


def _quietly(source):
    """A completion callback that offers nothing when its source fails."""

    def complete(ctx, param, incomplete):
        try:
            return source(ctx, param, incomplete)
        except Exception:  # noqa: BLE001 - completion never shows an error
            return []

    complete.__name__ = source.__name__
    complete.__doc__ = source.__doc__
    return complete


def _is_comma_list(param) -> bool:
    return bool(getattr(param, "multiple", False))


# -- fixed vocabularies ---------------------------------------------------------------

@_quietly
def job_names(ctx, param, incomplete):
    from deskctl.jobs import registry

    return matching(registry.names(), incomplete)


@_quietly
def channels(ctx, param, incomplete):
    return matching(_app(ctx).settings.channels, incomplete, comma_list=_is_comma_list(param))


@_quietly
def availability_states(ctx, param, incomplete):
    return matching(_app(ctx).settings.availability_states, incomplete)


# -- names from the database ----------------------------------------------------------

def _app(ctx):
    from deskctl.cli import app_of

    return app_of(ctx)


def _database_exists(url: str) -> bool:
    """False for a SQLite file that is not there: completing must not create it."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return True
    database = parsed.database
    return bool(database) and database != ":memory:" and Path(database).expanduser().is_file()


def _names(ctx, statement_for) -> list[str]:
    """Run `statement_for(app)` (a one-column SELECT) read-only; [] if there is no database."""
    app = _app(ctx)
    from deskctl.db.engine import normalize_url

    if not _database_exists(normalize_url(app.settings.database_url)):
        return []
    try:
        with app.engine.connect() as connection:
            return [value for value in connection.execute(statement_for(app)).scalars() if value]
    finally:
        app.close()


@_quietly
def groups(ctx, param, incomplete):
    from sqlalchemy import select

    from deskctl.models import Group

    return matching(_names(ctx, lambda app: select(Group.name).order_by(Group.name)), incomplete)


@_quietly
def locations(ctx, param, incomplete):
    from sqlalchemy import select

    from deskctl.models import Location

    return matching(_names(ctx, lambda app: select(Location.name).order_by(Location.name)), incomplete)


@_quietly
def users(ctx, param, incomplete):
    from sqlalchemy import select

    from deskctl.models import User

    statement = select(User.handle).where(User.active.is_(True)).order_by(User.handle)
    return matching(_names(ctx, lambda app: statement), incomplete)


@_quietly
def templates(ctx, param, incomplete):
    """Team templates and the acting user's personal ones."""
    from sqlalchemy import or_, select

    from deskctl.models import Template, User

    def statement(app):
        mine = select(User.id).where(User.handle == app.actor_handle).scalar_subquery()
        return (select(Template.name).where(or_(Template.owner_id.is_(None), Template.owner_id == mine))
                .distinct().order_by(Template.name))

    return matching(_names(ctx, statement), incomplete)


@_quietly
def transfer_refs(ctx, param, incomplete):
    """`user:H`, `group:G`, and the bare names (SPEC §2 transfer REF)."""
    from sqlalchemy import select

    from deskctl.models import Group, User

    group_names = _names(ctx, lambda app: select(Group.name).order_by(Group.name))
    handles = _names(ctx, lambda app: select(User.handle).where(User.active.is_(True)).order_by(User.handle))
    refs = [f"group:{g}" for g in group_names] + [f"user:{h}" for h in handles] + group_names + handles
    return matching(dict.fromkeys(refs), incomplete)
