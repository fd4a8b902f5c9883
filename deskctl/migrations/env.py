"""Alembic environment. Configured in code by deskctl.db.migrate (no alembic.ini)."""

from __future__ import annotations

from alembic import context

import deskctl.models  # noqa: F401  (registers every table)
from deskctl.db.base import Base

config = context.config
target_metadata = Base.metadata


def _include_name(name, type_, parent_names) -> bool:
    """The full-text search tables and indexes (migration 0004) are the engine's, not
    the models': leave them out of the comparison."""
    if type_ == "table":
        return not (name or "").startswith("search_")
    if type_ == "index":
        return not (name or "").startswith("ix_search_")
    return True


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=_include_name,
        # SQLite cannot ALTER most things; batch mode recreates tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        transaction_per_migration=True,
    )


def run_migrations_online() -> None:
    # Reuse the caller's connection when given (Alembic cookbook: sharing a connection).
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from deskctl.db.engine import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
