"""The application object a command receives: settings, database, actor, clock.

Everything is lazy, so `deskctl --help` reads no config and opens no database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cached_property

from deskctl.errors import ConfigError, Forbidden
from deskctl.services.actor import Actor


def login_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


class App:
    def __init__(
        self,
        *,
        db_url: str | None = None,
        config_file: str | None = None,
        actor_handle: str | None = None,
        fmt: str | None = None,
        table_format: str = "simple",
        formula_guard: bool = True,
        verbose: bool = False,
    ):
        self._db_url = db_url
        self._config_file = config_file
        # Named by --as / DESKCTL_USER, rather than defaulting to the login name.
        self.actor_named = bool(actor_handle)
        self.actor_handle = actor_handle or login_name()
        self._format = fmt
        self.table_format = table_format
        self.formula_guard = formula_guard  # csv only: --no-formula-guard turns it off
        self.verbose = verbose

    def set_global_option(self, name: str, value) -> None:
        """A global option given after the subcommand (`claim 42 --as bob`), named as
        the keyword of __init__: the same effect as before it. Parsing ends before any
        setting is read, so the lazy settings and engine see the new value."""
        if name == "no_formula_guard":
            self.formula_guard = not value
            return
        attribute = {"db_url": "_db_url", "config_file": "_config_file", "fmt": "_format"}.get(name, name)
        if attribute not in ("_db_url", "_config_file", "actor_handle", "_format", "table_format", "verbose"):
            raise ValueError(f"not a global option: {name}")
        setattr(self, attribute, value)

    # -- configuration -------------------------------------------------------------
    @cached_property
    def settings(self):
        from deskctl import clock
        from deskctl.config import load_settings

        settings = load_settings(self._config_file, self._db_url, self._db_url_origin())
        clock.install(settings)  # DESKCTL_NOW is checked before any work, whatever the command
        return settings

    def _db_url_origin(self) -> str:
        """Where the database URL came from, for messages: the variable or the flag."""
        import click

        ctx = click.get_current_context(silent=True)
        source = ctx.find_root().get_parameter_source("db_url") if ctx is not None else None
        return "DESKCTL_DATABASE_URL" if source is not None and source.name == "ENVIRONMENT" else "--db"

    def _database_origin(self) -> str | None:
        origin = self.settings.origins.get("database")
        return None if origin == "default" else origin

    def output_format(self, override: str | None = None) -> str:
        """--format on the command, else the global one / DESKCTL_FORMAT, else table on
        a terminal and tsv for pipes and scripts (as gh does)."""
        import sys

        from deskctl.term import is_tty

        return override or self._format or ("table" if is_tty(sys.stdout) else "tsv")

    @property
    def format_chosen(self) -> bool:
        """True when the user asked for a format (--format or DESKCTL_FORMAT) rather
        than getting the default for where stdout goes."""
        return self._format is not None

    def now(self) -> datetime:
        """The desk's current time: DESKCTL_NOW where the configuration allows it."""
        from deskctl import clock

        self.settings  # noqa: B018 - loading them accepts or refuses DESKCTL_NOW
        return clock.now()

    # -- database ------------------------------------------------------------------
    @cached_property
    def engine(self):
        from deskctl.db.engine import make_engine

        self._refuse_missing_sqlite_file()
        return make_engine(self.settings.database_url)

    def allow_new_database(self) -> None:
        """Only `db upgrade` and `demo` create a database (SPEC §9): any other command on a
        missing SQLite file stops with 78 instead of starting an empty desk by mistake.
        The default data directory is created here; a configured one must exist."""
        from deskctl.config import default_database_url, sqlite_file

        self.__dict__["_may_create_database"] = True
        url = self.settings.database_url
        if url == default_database_url():
            sqlite_file(url).parent.mkdir(parents=True, exist_ok=True)

    def _refuse_missing_sqlite_file(self) -> None:
        from deskctl.config import sqlite_file

        file = sqlite_file(self.settings.database_url)
        if file is None or file.exists() or self.__dict__.get("_may_create_database"):
            return
        raise ConfigError(self._database_origin(), "database.url", f"the database {file} does not exist; "
                          "run `deskctl db upgrade` to create it")

    @cached_property
    def _write_engine(self):
        # SQLite: writers begin with BEGIN IMMEDIATE (see db.engine._sqlite_begin).
        return self.engine.execution_options(sqlite_immediate=True)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()

    def ensure_schema(self) -> None:
        """The schema must be at the current revision (else `db upgrade`), but for a new
        SQLite file that `demo` creates (allow_new_database)."""
        if self.__dict__.get("_schema_checked"):  # once per run: loops of transactions stay cheap
            return
        from deskctl.db import migrate

        with self.engine.connect() as connection:
            current = migrate.schema_revision(connection)
            dialect = connection.dialect.name
        head = migrate.HEAD_REVISION
        if current == head:
            self.__dict__["_schema_checked"] = True
            return
        if current is None and dialect == "sqlite" and self.__dict__.get("_may_create_database"):
            migrate.upgrade(self.engine)
            self.__dict__["_schema_checked"] = True
            return
        state = "has no deskctl schema" if current is None else f"is at revision {current}, not {head}"
        raise ConfigError(self._database_origin(), "database.url",
                          f"the database {state}; run `deskctl db upgrade`")

    @contextmanager
    def transaction(self, *, dry_run: bool = False, write: bool = True) -> Iterator:
        """A session in one transaction: committed at the end, rolled back on any error
        or with --dry-run. Services never commit; this is the only place that does."""
        from sqlalchemy.orm import Session

        self.ensure_schema()
        session = Session(bind=self._write_engine if write else self.engine, expire_on_commit=False)
        try:
            yield session
            if dry_run or not write:
                session.rollback()
            else:
                session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def read(self) -> Iterator:
        with self.transaction(write=False) as session:
            yield session

    # -- the acting user -----------------------------------------------------------
    def actor(self, session) -> Actor:
        """The user named by --as / DESKCTL_USER / the login name; exit 5 if unknown."""
        cached = self.__dict__.get("_actor")
        if cached is not None:
            return cached
        from sqlalchemy import select

        from deskctl.models import GroupMember, User

        user = session.scalar(select(User).where(User.handle == self.actor_handle))
        if user is None and session.scalar(select(User.id).limit(1)) is None:
            raise Forbidden(
                "this desk has no users yet: create the first admin with "
                "`deskctl user add HANDLE --role admin` (then pass --as HANDLE or set DESKCTL_USER)"
            )
        if user is None or not user.active:
            raise Forbidden(
                f"unknown user {self.actor_handle!r}: pass --as HANDLE or set DESKCTL_USER "
                "to an existing user handle"
            )
        groups = session.scalars(select(GroupMember.group_id).where(GroupMember.user_id == user.id))
        actor = Actor(user.id, user.handle, user.role, user.location_id, frozenset(groups), user.availability)
        self.__dict__["_actor"] = actor
        return actor
