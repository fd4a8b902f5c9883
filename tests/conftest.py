"""Test harness: every test that uses `desk` runs on SQLite and on PostgreSQL.

The schema is built by running the migrations, and the small directory of `seeded` made,
once per engine per test session (per xdist worker); each test then starts from one of
those two states (a copied SQLite file, or a reset PostgreSQL database: see Database and
docs/development.md).
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
    """The databases of one engine for one test session (per xdist worker).

    Migrated once, and seeded once with the directory of tests.factories.seed_directory
    (made through the CLI); each test then starts from one of the two states, `empty` or
    `seeded`:

    - SQLite: two template files, and each test gets a copy of one (`fresh`).
    - PostgreSQL: one database for the session, put back in the state the test asks for
      in one transaction: every row deleted, the sequences that moved set back, the seed
      rows inserted again. `CREATE DATABASE ... TEMPLATE` per test (as bench/run.py does
      for its scratch copies) was measured and is slower here: a copy takes 0.1-0.4 s,
      and each DROP DATABASE forces a checkpoint of the whole server (0.5-6 s on a busy
      machine), which every other test session on the server waits for as well.
      TRUNCATE makes new files for every table and index (0.3-0.8 s); this takes 0.02-0.2 s.
    """

    def __init__(self, engine_name: str, tmp_root: Path):
        from deskctl.db.engine import make_engine
        from deskctl.db.migrate import upgrade

        self.engine_name = engine_name
        self.tmp_root = tmp_root
        if engine_name == "sqlite":
            self.templates = {"empty": tmp_root / "empty.db"}
            engine = make_engine(f"sqlite:///{self.templates['empty']}")
            upgrade(engine)
            engine.dispose()
            return
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
            # A throwaway database: a commit need not wait for its WAL to reach the disk
            # (it is visible to every other session at once all the same; only a crash of
            # the server itself could lose it).
            conn.execute(f'ALTER DATABASE "{self.pg_name}" SET synchronous_commit = off')
        self.url = f"{admin.rpartition('/')[0]}/{self.pg_name}"
        self.engine = make_engine(self.url)
        upgrade(self.engine)
        self.seed_rows: dict[str, list[dict]] | None = None

    def fresh(self, tmp_path: Path, kind: str = "empty") -> str:
        """A migrated database for one test, `empty` or `seeded`; returns its URL."""
        if self.engine_name == "sqlite":
            target = tmp_path / "desk.db"
            if kind not in self.templates:
                self._seed_sqlite()
            shutil.copyfile(self.templates[kind], target)
            return f"sqlite:///{target}"
        if kind == "seeded" and self.seed_rows is None:
            self._seed_postgresql()
        self._reset(self.seed_rows if kind == "seeded" else {})
        return self.url

    def _seed_sqlite(self) -> None:
        from tests.factories import seed_directory

        path = self.tmp_root / "seeded.db"
        shutil.copyfile(self.templates["empty"], path)
        desk = Desk(f"sqlite:///{path}", "sqlite", self.tmp_root)
        seed_directory(desk)
        desk.close()
        self.templates["seeded"] = path

    def _seed_postgresql(self) -> None:
        from deskctl.db.base import Base
        from tests.factories import seed_directory

        self._reset({})
        desk = Desk(self.url, "postgresql", self.tmp_root)
        seed_directory(desk)
        desk.close()
        with self.engine.connect() as conn:
            self.seed_rows = {table.name: rows for table in Base.metadata.sorted_tables
                              if (rows := [dict(r._mapping) for r in conn.execute(table.select())])}

    def _reset(self, rows: dict[str, list[dict]]) -> None:
        """Every row deleted, every sequence back at its start, then `rows` inserted (ids
        kept, their sequences moved past them): one transaction, one commit."""
        from sqlalchemy import text

        from deskctl.db.base import Base

        with self.engine.begin() as conn:
            # One round trip; children before parents, so no foreign key is left dangling.
            conn.exec_driver_sql("".join(f'DELETE FROM "{table.name}";'
                                         for table in reversed(Base.metadata.sorted_tables))
                                 + "SELECT setval(quote_ident(schemaname) || '.' || quote_ident(sequencename), "
                                 "start_value, false) FROM pg_sequences "
                                 "WHERE schemaname = current_schema() AND last_value IS NOT NULL")
            for table in Base.metadata.sorted_tables:
                if table.name in rows:
                    conn.execute(table.insert(), rows[table.name])
                    if "id" in table.c and table.c.id.autoincrement:
                        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                          f"(SELECT max(id) FROM {table.name}))"))

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
        # The test desk is a replay desk (SPEC §13): its configuration turns the clock
        # override on, so DESKCTL_NOW (`desk.now`) and `jobs run --now` are honoured. A test
        # that passes its own --config / DESKCTL_CONFIG gets exactly that file instead (and
        # adds `clock: {override: true}` to it when it moves the clock); `replay = False`
        # runs with the ordinary lookup and the default (override off).
        self.replay = True
        self._engine = None
        self._tables: list[str] | None = None

    def replay_config(self) -> Path:
        path = self.tmp_path / "replay-desk.yaml"
        if not path.exists():
            path.write_text("# A replay desk: DESKCTL_NOW and --now are honoured.\nclock: {override: true}\n")
        return path

    def run(self, *args, input=None, as_=None, env=None, fmt=None) -> Result:
        """Run `deskctl ARGS` in-process; `fmt` appends --format."""
        full_env = {"DESKCTL_DATABASE_URL": self.url, "DESKCTL_USER": as_ or self.actor}
        if self.now:
            full_env["DESKCTL_NOW"] = self.now
        argv = [str(a) for a in args]
        # A test's own configuration: in `env`, set on the process (monkeypatch), or --config.
        own_config = ("DESKCTL_CONFIG" in (env or {}) or "DESKCTL_CONFIG" in os.environ
                      or any(a == "--config" or a.startswith("--config=") for a in argv))
        if self.replay and not own_config:
            full_env["DESKCTL_CONFIG"] = str(self.replay_config())
        full_env.update(env or {})
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
            if self._tables is None:  # the schema does not change within a test
                self._tables = sorted(inspect(conn).get_table_names())
            for table in self._tables:
                rows = conn.execute(text(f'SELECT * FROM "{table}" ORDER BY 1')).all()
                out.append((table, [tuple(r) for r in rows]))
        return out

    def close(self):
        if self._engine is not None:
            self._engine.dispose()


@pytest.fixture
def desk(database, tmp_path, request) -> Desk:
    """A fresh migrated database of its own for the test; seeded (see `seeded`) when the
    test asks for `seeded` too."""
    kind = "seeded" if "seeded" in request.fixturenames else "empty"
    d = Desk(database.fresh(tmp_path, kind), database.engine_name, tmp_path)
    yield d
    d.close()


@pytest.fixture
def seeded(desk) -> Desk:
    """A small directory: root (admin), carol (supervisor, paris), alice and bob (agents,
    paris: billing / support), dave (agent, lyon: sales); everyone available. The database
    is a copy of a template seeded once per session (see Database)."""
    return desk
