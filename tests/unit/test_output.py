import csv
import io
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


def test_csv_parses_back_with_formula_injection_neutralised():
    text, count = rendered("csv")
    rows = list(csv.DictReader(io.StringIO(text)))
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


def test_csv_without_formula_guard_keeps_every_value():
    text, _ = rendered("csv", formula_guard=False)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["subject"] == "=HYPERLINK(\"http://evil\")"
    assert rows[0]["note"] == "+33 1 23"
    assert rows[1]["note"] == "@me"


def test_tsv_never_alters_a_value():
    """SPEC §9: only csv guards formulas; tsv is for pipelines and keeps values as they are."""
    text, count = rendered("tsv")
    lines = text.splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]
    assert count == 2
    assert rows[0]["subject"] == "=HYPERLINK(\"http://evil\")"  # no quoting either
    assert rows[0]["note"] == "+33 1 23"
    assert rows[1]["note"] == "@me"
    assert rows[0]["n"] == "-3"
    assert rows[0]["tags"] == "a,b"
    assert rows[0]["at"] == "2026-01-02T03:04:00+00:00"
    assert rows[1]["subject"] == "plain, with comma"
    assert rows[1]["at"] == ""


_AWKWARD = ["+33 6 12 34 56 78", "-- urgent", "=1+1", "@home", "tab\there", "two\nlines", "cr\rlf\r\n",
            "back\\slash", "\\n is not a newline", "trailing\\", 'say "hi"', "Léa 🎉 東京", "", "\t"]


def test_tsv_escapes_tabs_newlines_and_backslashes_and_reads_back_exactly():
    from deskctl.output import tsv_unescape

    rows = [{"id": i, "subject": value} for i, value in enumerate(_AWKWARD)]
    out = io.StringIO()
    render(iter(rows), [Column("id", "int"), Column("subject")], "tsv", out=out)
    lines = out.getvalue().split("\n")
    assert lines[-1] == ""  # every row ends with a newline...
    lines = lines[:-1]
    assert len(lines) == len(rows) + 1  # ...and no value adds one
    assert lines[0] == "id\tsubject"
    for line, value in zip(lines[1:], _AWKWARD, strict=True):
        cells = line.split("\t")
        assert len(cells) == 2 and "\r" not in line
        assert tsv_unescape(cells[1]) == value
    assert lines[1 + _AWKWARD.index("tab\there")] == "4\ttab\\there"
    assert lines[1 + _AWKWARD.index("back\\slash")].endswith("\tback\\\\slash")


@given(st.text())
def test_tsv_round_trip_of_any_text(value):
    from deskctl.output import tsv_unescape

    out = io.StringIO()
    render([{"v": value}], [Column("v")], "tsv", out=out)
    text = out.getvalue()
    assert text.endswith("\n")
    header, line = text[:-1].split("\n")
    assert header == "v"
    assert tsv_unescape(line) == value


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_formats_never_alter_a_value(fmt):
    rows = [{"id": i, "subject": value} for i, value in enumerate(_AWKWARD)]
    out = io.StringIO()
    render(iter(rows), [Column("id", "int"), Column("subject")], fmt, out=out)
    text = out.getvalue()
    parsed = json.loads(text) if fmt == "json" else [json.loads(line) for line in text.splitlines()]
    assert [r["subject"] for r in parsed] == _AWKWARD


def _failing_rows(after: int):
    for i in range(after):
        yield {"id": i, "subject": "s"}
    raise RuntimeError("query failed")


@pytest.mark.parametrize("fmt", ["table", "csv", "tsv", "json", "jsonl", "ids"])
def test_a_query_failing_before_its_first_row_leaves_stdout_empty(fmt):
    """SPEC §9: a failing command prints nothing on stdout, so no header (nor "[")
    may be written before the first row exists."""
    out = io.StringIO()
    with pytest.raises(RuntimeError):
        render(_failing_rows(0), [Column("id", "int"), Column("subject")], fmt, out=out)
    assert out.getvalue() == ""


@pytest.mark.parametrize("fmt, expected", [("csv", "id,subject\n"), ("tsv", "id\tsubject\n"), ("json", "[]\n"),
                                           ("jsonl", ""), ("ids", ""), ("table", "")])
def test_no_rows_still_gets_its_header(fmt, expected):
    out = io.StringIO()
    assert render(iter([]), [Column("id", "int"), Column("subject")], fmt, out=out) == 0
    assert out.getvalue() == expected


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
    assert text.splitlines()[0].split("|")[1].strip() == "id"


def _table_lines(rows, columns, **kw):
    out = io.StringIO()
    render(iter(rows), columns, "table", out=out, **kw)
    return out.getvalue().splitlines()


def test_table_right_aligns_numbers_and_left_aligns_text():
    lines = _table_lines([{"id": 7, "subject": "a"}, {"id": 1234, "subject": "longer"}],
                         [Column("id", "int"), Column("subject")])
    assert lines[2] == "   7  a"
    assert lines[3] == "1234  longer"


def test_table_lines_up_accents_emoji_and_cjk():
    from deskctl.term import display_width

    rows = [{"id": 1, "name": "Léa Dubois"}, {"id": 2, "name": "東京の客"}, {"id": 3, "name": "🎉 party"},
            {"id": 4, "name": "plain"}]
    lines = _table_lines(rows, [Column("name"), Column("id", "int")], table_format="github")
    widths = {display_width(line) for line in lines}
    assert len(widths) == 1, lines  # every line as wide on screen: the borders line up
    # The id column starts at the same screen column on every row.
    assert len({display_width(line[:line.rindex("|", 0, len(line) - 1)]) for line in lines}) == 1


def test_table_fits_the_width_cutting_the_widest_column_by_display_width():
    from deskctl.term import display_width

    rows = [{"id": 1, "subject": "é" * 100, "who": "alice"}, {"id": 22, "subject": "東" * 60, "who": "bob"}]
    columns = [Column("id", "int"), Column("subject"), Column("who")]
    lines = _table_lines(rows, columns, width=40)
    assert 38 <= max(display_width(line) for line in lines) <= 40  # fitted, not over-cut
    assert lines[2].endswith("alice") and lines[3].endswith("bob")  # narrow columns untouched
    assert "…" in lines[2] and "…" in lines[3]
    assert _table_lines(rows, columns, width=None)[2].count("é") == 100  # no width: nothing cut
    assert "…" not in "".join(_table_lines(rows[:1], columns, width=200))


def test_truncate_counts_display_width_and_keeps_colour():
    from deskctl.term import display_width, truncate

    assert truncate("東京東京東京", 5) == "東京…" and display_width("東京…") == 5
    assert truncate("Léa Dubois", 20) == "Léa Dubois"
    assert truncate("abcdefgh", 4) == "abc…"
    red = "\033[31mlate 35m and more\033[0m"
    assert truncate(red, 8) == "\033[31mlate 35…\033[0m" and display_width(truncate(red, 8)) == 8


def test_check_table_format_refuses_an_unknown_name_listing_the_valid_ones():
    import click

    from deskctl.output import check_table_format

    assert check_table_format(None, None, "github") == "github"
    with pytest.raises(click.BadParameter, match="unknown table format 'nonsense'.*github.*simple"):
        check_table_format(None, None, "nonsense")


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


@pytest.mark.parametrize("guard", [False, True])
@pytest.mark.parametrize("kind", _KINDS)
def test_machine_cell_reader_matches_the_general_cell_function(kind, guard):
    """The per-column shortcut csv/tsv use must write exactly what the general
    `_machine_cell` writes, for every kind and value type."""
    from deskctl.output import _machine_cell, _machine_cell_reader

    column = Column("v", kind)
    read = _machine_cell_reader(column, guard)
    for value in _VALUES:
        if kind == "duration" and not isinstance(value, (int, float, type(None))):
            continue  # durations are numbers; int() of text is not a case the records have
        assert read({"v": value}) == _machine_cell(column, value, guard), (kind, value)
    assert read({}) == ""
    getter = Column("v", kind, get=lambda row: row["nested"]["v"])
    assert _machine_cell_reader(getter, guard)({"nested": {"v": 7}}) == _machine_cell(getter, 7, guard)
