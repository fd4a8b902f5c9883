"""Database URLs read without importing SQLAlchemy.

Configuration is checked on every command, also on the ones that never open the
database (`ingest email -` in spool mode, SPEC §11), and importing SQLAlchemy costs
more than the rest of such a command. This reads the parts configuration checks (the
driver name, the port, a SQLite file) with the same grammar as `sqlalchemy.engine.make_url`
(`driver://user:password@host:port/database?query`); the engine itself still parses
the URL with SQLAlchemy when it connects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

# scheme, then optional "user[:password]@", optional host (name or [IPv6]) and ":port",
# optional "/database", optional "?query".
_URL = re.compile(
    r"(?P<drivername>[\w+]+)://"
    r"(?:[^:/]*(?::[^@]*)?@)?"
    r"(?:(?:\[[^/?]+\]|[^/:?]+)?(?::(?P<port>[^/?]*))?)?"
    r"(?:/(?P<database>[^?]*))?"
    r"(?:\?.*)?"
)


@dataclass(frozen=True)
class UrlParts:
    drivername: str  # e.g. sqlite, postgresql+psycopg
    port: int | None
    database: str | None

    @property
    def backend(self) -> str:
        return self.drivername.partition("+")[0]


def parse(url: str) -> UrlParts:
    """The parts of `url`; ValueError when it is not a database URL or its port is not
    a number (where make_url raises ArgumentError or ValueError)."""
    match = _URL.match(url)
    if match is None:
        raise ValueError(f"not a database URL: {url!r}")
    port = match.group("port")
    database = match.group("database")
    return UrlParts(match.group("drivername"), int(port) if port is not None else None,
                    unquote(database) if database is not None else None)


def normalize_url(url: str) -> str:
    """Accept postgres:// and postgresql:// and use psycopg 3 for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url
