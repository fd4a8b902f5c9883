import csv
import io
import json
from datetime import UTC, datetime

import pytest

from deskctl.output import Column, render

ROWS = [
    {"id": 1, "subject": "=HYPERLINK(\"http://evil\")", "tags": ["a", "b"], "at": datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
     "handle_s": 7500, "n": -3, "note": "+33 1 23"},
    {"id": 2, "subject": "plain, with comma", "tags": [], "at": None, "handle_s": None, "n": 5, "note": "@me"},
]
COLUMNS = [Column("id", "int"), Column("subject"), Column("tags", "list"), Column("at", "datetime"),
           Column("handle_s", "duration"), Column("n", "int"), Column("note")]


def rendered(fmt, rows=ROWS, **kw):
    out = io.StringIO()
    count = render(iter(rows), COLUMNS, fmt, out=out, **kw)
    return out.getvalue(), count


@pytest.mark.parametrize("fmt, delimiter", [("csv", ","), ("tsv", "\t")])
def test_csv_and_tsv_parse_back_with_formula_injection_neutralised(fmt, delimiter):
    text, count = rendered(fmt)
    rows = list(csv.DictReader(io.StringIO(text), delimiter=delimiter))
    assert count == 2
    assert rows[0]["subject"] == "'=HYPERLINK(\"http://evil\")"
    assert rows[0]["note"] == "'+33 1 23"
    assert rows[1]["note"] == "'@me"
    assert rows[0]["n"] == "-3"  # numbers are numbers, not formulas
    assert rows[0]["tags"] == "a,b"
    assert rows[0]["at"] == "2026-01-02T03:04:00+00:00"
    assert rows[0]["handle_s"] == "7500"
    assert rows[1]["subject"] == "plain, with comma"
    assert rows[1]["at"] == ""


def test_json_is_one_array_and_empty_is_brackets():
    text, _ = rendered("json")
    data = json.loads(text)
    assert [r["id"] for r in data] == [1, 2]
    assert data[0]["at"] == "2026-01-02T03:04:00+00:00"
    empty, count = rendered("json", rows=[])
    assert json.loads(empty) == [] and count == 0


def test_jsonl_one_object_a_line():
    text, _ = rendered("jsonl")
    lines = text.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [1, 2]


def test_ids():
    text, _ = rendered("ids")
    assert text == "1\n2\n"


def test_table_humanises_durations_and_local_times():
    text, _ = rendered("table", tz="Europe/Paris", table_format="github")
    assert "2h 05m" in text
    assert "2026-01-02 04:04" in text
    assert text.splitlines()[0].startswith("| id")


def test_render_streams_a_generator_without_materialising():
    produced = []

    def gen():
        for i in range(3):
            produced.append(i)
            yield {"id": i}

    out = io.StringIO()
    render(gen(), [Column("id", "int")], "jsonl", out=out)
    assert produced == [0, 1, 2]


_KINDS = ("str", "int", "float", "datetime", "duration", "list", "bool")
_VALUES = (None, "", "text", "=1+1", "-3", "\tx", "12", 0, 7, -4, 2.5, True, False,
           datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC), ["b", "a"], ("x",), {"k": 1}, b"raw")


@pytest.mark.parametrize("kind", _KINDS)
def test_machine_cell_reader_matches_the_general_cell_function(kind):
    """The per-column shortcut csv/tsv use must write exactly what the general
    `_machine_cell` writes, for every kind and value type."""
    from deskctl.output import _machine_cell, _machine_cell_reader

    column = Column("v", kind)
    read = _machine_cell_reader(column)
    for value in _VALUES:
        if kind == "duration" and not isinstance(value, (int, float, type(None))):
            continue  # durations are numbers; int() of text is not a case the records have
        assert read({"v": value}) == _machine_cell(column, value), (kind, value)
    assert read({}) == ""
    getter = Column("v", kind, get=lambda row: row["nested"]["v"])
    assert _machine_cell_reader(getter)({"nested": {"v": 7}}) == _machine_cell(getter, 7)
