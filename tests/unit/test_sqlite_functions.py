"""deskctl_percentiles on a real SQLite connection agrees with PostgreSQL's
percentile_cont definition (linear interpolation at 1 + f * (n - 1))."""

import json
import sqlite3

import pytest

from deskctl.db.sqlite_functions import register


def percentile_cont(values, fraction):
    ordered = sorted(v for v in values if v is not None)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    if low + 1 >= len(ordered):
        return float(ordered[low])
    return ordered[low] + (position - low) * (ordered[low + 1] - ordered[low])


@pytest.fixture
def conn():
    connection = sqlite3.connect(":memory:")
    register(connection)
    connection.execute("CREATE TABLE t (k TEXT, v)")
    yield connection
    connection.close()


@pytest.mark.parametrize("values", [[7], [1, 2, 3, 4], [10, None, 3, 3, 8, 1.5], list(range(1000, 0, -7))])
def test_matches_percentile_cont(conn, values):
    conn.executemany("INSERT INTO t VALUES ('a', ?)", [(v,) for v in values])
    [(text,)] = conn.execute("SELECT deskctl_percentiles(v, '0.5,0.9') FROM t GROUP BY k").fetchall()
    assert json.loads(text) == pytest.approx([percentile_cont(values, 0.5), percentile_cont(values, 0.9)])


def test_groups_are_separate_and_all_null_gives_null(conn):
    conn.executemany("INSERT INTO t VALUES (?, ?)", [("a", 1), ("a", 3), ("b", 10), ("c", None)])
    rows = dict(conn.execute("SELECT k, deskctl_percentiles(v, '0.5') FROM t GROUP BY k").fetchall())
    assert json.loads(rows["a"]) == [2.0] and json.loads(rows["b"]) == [10.0] and rows["c"] is None
