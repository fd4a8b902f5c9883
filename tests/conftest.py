"""Test harness: every test that uses `desk` runs on SQLite and on PostgreSQL.

The schema is built by running the migrations, once per engine per test session; each
test then gets a clean database (a copied SQLite file, or truncated PostgreSQL tables).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from deskctl.cli import cli

ENGINES = ("sqlite", "postgresql")
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pytest_addoption(parser):
    parser.addoption("--engine", choices=ENGINES, action="append",
                     help="Run only on this engine (repeatable); default both.")


def pytest_generate_tests(metafunc):
    if "engine_name" in metafunc.fixturenames:
        engines = metafunc.config.getoption("engine") or list(ENGINES)
        metafunc.parametrize("engine_name", engines, scope="session")


def _pg_admin_url() -> str:
    from deskctl.db.engine import normalize_url

    return normalize_url(os.environ.get("DESKCTL_TEST_POSTGRES_URL") or DEFAULT_PG)


def _pg_available(url: str) -> str | None:
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(plain, connect_timeout=3):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means "no server"
        return str(exc).splitlines()[0]


class Database:
    """One migrated database per engine for the whole test session."""

    def __init__(self, engine_name: str, tmp_root: Path):
        from deskctl.db.engine import make_engine
        from deskctl.db.migrate import upgrade

        self.engine_name = engine_name
        if engine_name == "sqlite":
            self.template = tmp_root / "template.db"
            engine = make_engine(f"sqlite:///{self.template}")
            upgrade(engine)
            engine.dispose()
        else:
            admin = _pg_admin_url()
            problem = _pg_available(admin)
            if problem:
                message = f"PostgreSQL not reachable at DESKCTL_TEST_POSTGRES_URL ({admin}): {problem}"
                if os.environ.get("CI", "").lower() == "true":
                    pytest.fail(message + " (CI=true: PostgreSQL tests must run)")
                pytest.skip(message)
            import psycopg

            self.pg_name = f"deskctl_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            self.admin_plain = admin.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(self.admin_plain, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.pg_name}"')
            base, _, _ = admin.rpartition("/")
            self.url = f"{base}/{self.pg_name}"
            self.engine = make_engine(self.url)
            upgrade(self.engine)
            from sqlalchemy import inspect

            self.tables = [t for t in inspect(self.engine).get_table_names() if t != "alembic_version"]

    def fresh(self, tmp_path: Path) -> str:
        """A clean, migrated database for one test; returns its URL."""
        if self.engine_name == "sqlite":
            target = tmp_path / "desk.db"
            shutil.copyfile(self.template, target)
            return f"sqlite:///{target}"
        from sqlalchemy import text

        with self.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(self.tables)} RESTART IDENTITY CASCADE"))
        return self.url

    def close(self) -> None:
        if self.engine_name == "postgresql":
            import psycopg

            self.engine.dispose()
            with psycopg.connect(self.admin_plain, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database(engine_name, tmp_path_factory):
    db = Database(engine_name, tmp_path_factory.mktemp(f"db-{engine_name}"))
    yield db
    db.close()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test sees the developer's config, data directory, user or format."""
    for name in list(os.environ):
        if name.startswith("DESKCTL_") and name != "DESKCTL_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg-config-dirs"))  # not /etc/xdg
    monkeypatch.delenv("NO_COLOR", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)


class Result:
    def __init__(self, click_result):
        self.raw = click_result
        self.exit_code = click_result.exit_code
        self.stdout = click_result.stdout
        self.stderr = click_result.stderr

    def json(self):
        return json.loads(self.stdout)

    def jsonl(self):
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def __repr__(self):
        return f"<Result exit={self.exit_code} stdout={self.stdout[:300]!r} stderr={self.stderr[:500]!r}>"


class Desk:
    """A deskctl installation under test: run commands, look at the database."""

    def __init__(self, url: str, engine_name: str, tmp_path: Path):
        self.url = url
        self.engine_name = engine_name
        self.tmp_path = tmp_path
        self.actor = "root"
        self.now: str | None = None
        self._engine = None

    def run(self, *args, input=None, as_=None, env=None, fmt=None) -> Result:
        """Run `deskctl ARGS` in-process; `fmt` appends --format."""
        full_env = {"DESKCTL_DATABASE_URL": self.url, "DESKCTL_USER": as_ or self.actor}
        if self.now:
            full_env["DESKCTL_NOW"] = self.now
        full_env.update(env or {})
        argv = [str(a) for a in args]
        if fmt:
            argv += ["--format", fmt]
        result = CliRunner().invoke(cli, argv, input=input, env=full_env, catch_exceptions=True)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Result(result)

    def ok(self, *args, **kwargs) -> Result:
        """Run and assert exit 0."""
        result = self.run(*args, **kwargs)
        assert result.exit_code == 0, result
        return result

    def json(self, *args, **kwargs):
        return self.ok(*args, fmt="json", **kwargs).json()

    @property
    def engine(self):
        if self._engine is None:
            from deskctl.db.engine import make_engine

            self._engine = make_engine(self.url)
        return self._engine

    @contextmanager
    def session(self):
        """A session for arranging and asserting; commits at the end."""
        from sqlalchemy.orm import Session

        with Session(self.engine, expire_on_commit=False) as session:
            yield session
            session.commit()

    def scalar(self, sql: str, **params):
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params) -> list[dict]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql), params)]

    def dump(self) -> list:
        """Every row of every table: to prove a failing command changed nothing."""
        from sqlalchemy import inspect, text

        out = []
        with self.engine.connect() as conn:
            for table in sorted(inspect(conn).get_table_names()):
                rows = conn.execute(text(f'SELECT * FROM "{table}" ORDER BY 1')).all()
                out.append((table, [tuple(r) for r in rows]))
        return out

    def close(self):
        if self._engine is not None:
            self._engine.dispose()


@pytest.fixture
def desk(database, tmp_path) -> Desk:
    d = Desk(database.fresh(tmp_path), database.engine_name, tmp_path)
    yield d
    d.close()


@pytest.fixture
def seeded(desk) -> Desk:
    """A small directory: root (admin), carol (supervisor, paris), alice and bob (agents,
    paris: billing / support), dave (agent, lyon: sales); everyone available."""
    from tests.factories import seed_directory

    seed_directory(desk)
    return desk
