"""The one module that writes records: table, csv, tsv, json, jsonl, ids.

Rows are dicts shaped like the SPEC §7 records; JSON formats print them whole, the
tabular formats project them through `Column`s. Everything but `table` streams, so a
million-row export holds one row at a time.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

# Cells starting with these are formulas to a spreadsheet (OWASP "CSV injection").
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Column:
    """One column of tabular output.

    kind: str | int | float | datetime | duration | list | bool
    get: how to read the cell from a record (default: record[name]).
    """

    name: str
    kind: str = "str"
    get: Callable[[dict], Any] | None = None

    def value(self, row: dict) -> Any:
        return self.get(row) if self.get else row.get(self.name)


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any) -> str:
    return json.dumps(value, default=json_default, ensure_ascii=False)


def _machine_cell(column: Column, value: Any, guard: bool = False) -> str:
    """A csv/tsv cell, before tsv's escaping: ISO times, integer seconds, lists joined
    with commas, dicts as JSON, text as it is. guard (csv only): a text cell a spreadsheet
    would run as a formula gets a leading `'`; numbers are left alone."""
    if value is None:
        return ""
    if column.kind == "bool" or isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if column.kind == "duration":
        return str(int(value))
    if isinstance(value, (list, tuple, set, frozenset)):
        text = ",".join(str(v) for v in value)
    elif isinstance(value, dict):
        text = dumps(value)
    else:
        text = str(value)
    if not guard or column.kind in ("int", "float", "duration") or isinstance(value, (int, float)):
        return text
    if text.startswith(_FORMULA_PREFIXES):
        return "'" + text
    return text


def _machine_cell_reader(column: Column, guard: bool = False) -> Callable[[dict], str]:
    """`_machine_cell(column, column.value(row), guard)` as one function per column, with
    a shortcut for the value types a column usually holds: a million-row csv calls it
    once per cell."""
    read = column.get or (lambda row, name=column.name: row.get(name))
    kind = column.kind
    if kind == "bool":
        return lambda row: _machine_cell(column, read(row), guard)
    guard_text = guard and kind not in ("int", "float", "duration")

    def cell(row: dict) -> str:
        value = read(row)
        if value is None:
            return ""
        kind_of = type(value)
        if kind_of is str and kind != "duration":
            if not guard_text or not value.startswith(_FORMULA_PREFIXES):
                return value
        elif kind_of is int and kind in ("int", "duration", "float"):
            return str(value)
        elif kind_of is datetime:
            return value.isoformat()
        elif kind_of is list and kind not in ("int", "float", "duration"):
            text = ",".join(map(str, value))
            return "'" + text if guard and text.startswith(_FORMULA_PREFIXES) else text
        return _machine_cell(column, value, guard)

    return cell


# tsv carries any text: the escapes of PostgreSQL's COPY text format, so a value holding a
# tab, a line break or a backslash still fits one cell of one line and reads back exactly.
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_TSV_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}
_TSV_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


def tsv_escape(text: str) -> str:
    return text.translate(_TSV_ESCAPES)


def tsv_unescape(cell: str) -> str:
    """The reverse of `tsv_escape` (for tests and Python readers of deskctl's tsv)."""
    return _TSV_ESCAPE_RE.sub(lambda m: _TSV_UNESCAPES.get(m.group(1), m.group(1)), cell)


def _tsv_escaped(read: Callable[[dict], str]) -> Callable[[dict], str]:
    def cell(row: dict) -> str:
        text = read(row)
        # Most cells have nothing to escape; the membership tests are cheaper than translate.
        if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
            return tsv_escape(text)
        return text

    return cell


def _table_cell(column: Column, value: Any, tz) -> str:
    from deskctl.timeparse import humanize_seconds

    if value is None:
        return ""
    if column.kind == "duration":
        return humanize_seconds(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return dumps(value)
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value).replace("\r", " ").replace("\n", " ")


_NO_ROW = object()


def render(
    rows: Iterable[dict],
    columns: Sequence[Column],
    fmt: str,
    *,
    table_format: str = "simple",
    tz: str = "UTC",
    out=None,
    id_key: str = "id",
    formula_guard: bool = True,
    width: int | None = None,
) -> int:
    """Write `rows` in `fmt` to `out` (stdout). Returns the number of rows written.

    formula_guard: csv only (tsv, json, jsonl and ids never alter a value).
    width: fit a table to this many display columns (the terminal's width)."""
    out = out if out is not None else sys.stdout
    # Rows are often a lazy query: fetch the first one before writing anything, so that a
    # query that fails leaves stdout empty rather than holding a lone header or "[".
    rows = iter(rows)
    first = next(rows, _NO_ROW)
    if first is not _NO_ROW:
        rows = itertools.chain((first,), rows)
    count = 0
    if fmt == "json":
        out.write("[")
        for row in rows:
            out.write(",\n" if count else "\n")
            out.write(dumps(row))
            count += 1
        out.write("\n]\n" if count else "]\n")
    elif fmt == "jsonl":
        for row in rows:
            out.write(dumps(row) + "\n")
            count += 1
    elif fmt == "ids":
        for row in rows:
            out.write(f"{row[id_key]}\n")
            count += 1
    elif fmt == "tsv":
        out.write("\t".join(tsv_escape(c.name) for c in columns) + "\n")
        readers = [_tsv_escaped(_machine_cell_reader(c)) for c in columns]
        for row in rows:
            out.write("\t".join([read(row) for read in readers]) + "\n")
            count += 1
    elif fmt == "csv":
        import csv

        writer = csv.writer(out, lineterminator="\n")
        # csv quotes a cell holding "\n" but not a bare CR, which readers take as a row
        # break: rows with one are written fully quoted.
        quoting_writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
        writer.writerow([c.name for c in columns])
        readers = [_machine_cell_reader(c, formula_guard) for c in columns]
        for row in rows:
            cells = [read(row) for read in readers]
            (quoting_writer if "\r" in "".join(cells) else writer).writerow(cells)
            count += 1
    elif fmt == "table":
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(tz)
        body = [[_table_cell(c, c.value(row), zone) for c in columns] for row in rows]
        count = len(body)
        if body:
            out.write(_tabulate(body, columns, table_format, width) + "\n")
    else:  # validated by the option parser; a bug if reached
        raise ValueError(f"unknown format {fmt!r}")
    out.flush()
    return count


_NUMERIC_KINDS = ("int", "float", "duration")
# A column squeezed to fit the terminal keeps at least this many display columns.
_MIN_FITTED_WIDTH = 5


def _tabulate(body: list[list[str]], columns: Sequence[Column], table_format: str, width: int | None) -> str:
    """tabulate with numbers right-aligned and, given a width, the widest columns cut
    (by display width, with an ellipsis) until the table fits."""
    from tabulate import MIN_PADDING, tabulate

    from deskctl import term

    headers = [c.name for c in columns]
    align = ["right" if c.kind in _NUMERIC_KINDS else "left" for c in columns]

    def draw(rows, heads):
        return tabulate(rows, headers=heads, tablefmt=table_format, disable_numparse=True,
                        missingval="", colalign=align)

    if width is None:
        return draw(body, headers)
    # tabulate pads each header by MIN_PADDING (but in "pretty"): a header takes that much
    # more room than a cell, and is cut that much shorter.
    pad = 0 if table_format == "pretty" else MIN_PADDING
    cell_widths = [max(map(term.display_width, column)) for column in zip(*body, strict=True)]
    natural = [max(term.display_width(head) + pad, cell)
               for head, cell in zip(headers, cell_widths, strict=True)]
    floors = [min(w, _MIN_FITTED_WIDTH) for w in natural]

    def caps_for(cap):
        return [max(floor, min(w, cap)) for w, floor in zip(natural, floors, strict=True)]

    def cut(cells, caps, less=0):
        return [term.truncate(cell, max(cap - less, 3)) for cell, cap in zip(cells, caps, strict=True)]

    def drawn_width(caps):
        # A column is as wide as its widest cell or its padded header, so one row of
        # stand-ins as wide as the widest cut cells could be measures the whole table.
        stand_ins = ["x" * min(w, cap) for w, cap in zip(cell_widths, caps, strict=True)]
        sample = draw([stand_ins], cut(headers, caps, pad))
        return max(term.display_width(line) for line in sample.splitlines())

    if drawn_width(natural) <= width:
        return draw(body, headers)
    # The largest common cap that fits: the widest columns give way first.
    low, high = _MIN_FITTED_WIDTH, max(natural)
    while low < high:
        cap = (low + high + 1) // 2
        if drawn_width(caps_for(cap)) <= width:
            low = cap
        else:
            high = cap - 1
    caps = caps_for(low)
    # What one more step of the common cap could not use goes to the cut columns, widest
    # first: a cut column is exactly as wide as its cap.
    spare = width - drawn_width(caps)
    for i in sorted(range(len(caps)), key=lambda i: -natural[i]):
        grow = min(spare, natural[i] - caps[i])
        if grow > 0:
            caps[i] += grow
            spare -= grow
    return draw([cut(row, caps) for row in body], cut(headers, caps, pad))


def check_table_format(ctx, param, value):
    """Click callback for --table-format: an unknown name is a usage error listing the
    valid ones (tabulate would silently fall back to its default)."""
    if value is None or value == "simple":  # the default: no need to import tabulate
        return value
    from tabulate import tabulate_formats

    if value not in tabulate_formats:
        import click

        raise click.BadParameter(
            f"unknown table format {value!r}; valid: {', '.join(tabulate_formats)}", ctx, param)
    return value


def notice(message: str) -> None:
    """A line for humans on stderr; never mixed into machine output on stdout."""
    import click

    click.echo(message, err=True)


def warn(message: str) -> None:
    import click

    click.echo(f"warning: {message}", err=True)


# ANSI colours of the SLA cell on a terminal: ok grey, warning orange, breached red.
_SLA_COLOURS = {"ok": "\033[90m", "warning": "\033[38;5;208m", "breached": "\033[31m"}


def _sla_cell(record: dict) -> str:
    """Tables: "2h10m left" / "late 35m", coloured by state when stdout is a terminal."""
    from deskctl import clock, term
    from deskctl.services.sla.deadlines import describe

    sla = record.get("sla") or {}
    text = describe(sla, clock.now())
    colour = _SLA_COLOURS.get(sla.get("state"))
    if text and colour and term.color_enabled(sys.stdout):
        return f"{colour}{text}\033[0m"
    return text


def conversation_columns(wide: bool) -> list[Column]:
    """Tabular projection of the conversation record (SPEC §7). Tables get a narrow set;
    csv/tsv get every scalar field, with the contact and SLA flattened."""

    def contact(field):
        return lambda r: (r.get("contact") or {}).get(field)

    def sla(field):
        return lambda r: (r.get("sla") or {}).get(field)

    if not wide:
        return [
            Column("id", "int"), Column("status"), Column("priority"), Column("channel"),
            Column("assignee"), Column("group"),
            Column("subject", get=lambda r: _shorten(r.get("subject"), 48)),
            Column("contact", get=lambda r: (r.get("contact") or {}).get("name")
                   or (r.get("contact") or {}).get("email")),
            Column("sla", get=_sla_cell), Column("updated_at", "datetime"),
        ]
    return [
        Column("id", "int"), Column("subject"), Column("status"), Column("channel"), Column("priority"),
        Column("assignee"), Column("group"), Column("location"),
        Column("contact_id", "int", contact("id")), Column("contact_name", get=contact("name")),
        Column("contact_email", get=contact("email")), Column("contact_vip", "bool", contact("vip")),
        Column("tags", "list"), Column("reason"), Column("watchers", "list"),
        Column("created_at", "datetime"), Column("updated_at", "datetime"), Column("boomerang_at", "datetime"),
        Column("linked_to", "int"), Column("sla_policy", get=sla("policy")), Column("sla_state", get=sla("state")),
        Column("first_response_due", "datetime", sla("first_response_due")),
        Column("next_response_due", "datetime", sla("next_response_due")),
        Column("resolution_due", "datetime", sla("resolution_due")),
        Column("sla_breached", "list", sla("breached")),
        Column("offered_to"), Column("offer_expires_at", "datetime"),
    ]


def _shorten(text: str | None, width: int) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


# Message types the desk sets itself (email ingest, `deskctl new`): not worth a label.
_DESK_MESSAGE_TYPES = ("email", "agent_entry")


def render_thread(record: dict, *, tz: str = "UTC", out=None) -> None:
    """`show` on a terminal: a header, then messages, notes and events in order."""
    from zoneinfo import ZoneInfo

    from deskctl.timeparse import humanize_seconds

    out = out if out is not None else sys.stdout
    zone = ZoneInfo(tz)

    def when(value):
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M") if value else ""

    contact = record.get("contact") or {}
    sla = record.get("sla") or {}
    who = contact.get("name") or ""
    if contact.get("email"):
        who = f"{who} <{contact['email']}>".strip()
    if contact.get("vip"):
        who += " [VIP]"
    lines = [
        f"#{record['id']} {record['subject']}",
        f"  status: {record['status']}   priority: {record['priority']}   channel: {record['channel']}",
        f"  contact: {who or '-'}",
        f"  assignee: {record['assignee'] or '-'}   group: {record['group'] or '-'}"
        f"   location: {record['location'] or '-'}",
    ]
    if record.get("tags") or record.get("reason"):
        lines.append(f"  tags: {', '.join(record['tags']) or '-'}   reason: {record.get('reason') or '-'}")
    if sla.get("policy"):
        from deskctl import clock
        from deskctl.services.sla.deadlines import describe

        # The table cell's words ("met", "late 2h", "3h left"): a closed conversation
        # shows its final outcome here too, not a state.
        breached = f"   breached: {', '.join(sla['breached'])}" if sla.get("breached") else ""
        lines.append(f"  sla: {sla['policy']} ({describe(sla, clock.now()) or sla['state']}){breached}")
    if record.get("boomerang_at"):
        lines.append(f"  boomerang: {when(record['boomerang_at'])}")
    if record.get("reminder"):
        lines.append(f"  reminder: {record['reminder']}")
    if record.get("linked_to"):
        lines.append(f"  linked to: #{record['linked_to']}")
    if record.get("offered_to"):
        lines.append(f"  offered to: {record['offered_to']} until {when(record['offer_expires_at'])}")
    if record.get("watchers"):
        lines.append(f"  watchers: {', '.join(record['watchers'])}")
    now = record.get("_now")
    if now and record.get("created_at"):
        age = humanize_seconds((now - record["created_at"]).total_seconds())
        lines.append(f"  received: {when(record['created_at'])} ({age} ago)")
    # Messages before the events of the same instant; an event's own `kind` (created,
    # claimed, ...) is not a message kind, so the two are told apart by the flag.
    items = [(m["at"], False, m) for m in record.get("messages", [])]
    items += [(e["at"], True, e) for e in record.get("events", [])]
    items.sort(key=lambda t: (t[0], t[1]))
    for _, is_event, item in items:
        lines.append("")
        if is_event:
            data = ", ".join(f"{k}={v}" for k, v in (item.get("data") or {}).items())
            lines.append(f"  · {when(item['at'])} {item['actor']}: {item['kind']} {data}".rstrip())
            continue
        label = {"inbound": "from", "outbound": "reply by", "note": "NOTE by"}[item["kind"]]
        # The channel's own message type (a Twitter DM, a public post); not the desk's own marks.
        kind = f" ({item['type']})" if item.get("type") and item["type"] not in _DESK_MESSAGE_TYPES else ""
        lines.append(f"--- {when(item['at'])} {label} {item['author'] or '?'}{kind}")
        if item.get("url"):
            lines.append(f"    link: {item['url']}")
        for att in item.get("attachments") or []:
            lines.append(f"    [attachment: {att['filename']} {att['content_type']} {att['size']} bytes]")
        lines.append((item.get("text") or "").rstrip())
    out.write("\n".join(lines) + "\n")
    out.flush()
