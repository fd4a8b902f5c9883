"""The one module that writes records: table, csv, tsv, json, jsonl, ids.

Rows are dicts shaped like the SPEC §7 records; JSON formats print them whole, the
tabular formats project them through `Column`s. Everything but `table` streams, so a
million-row export holds one row at a time.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

FORMATS = ("table", "csv", "tsv", "json", "jsonl", "ids")
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


def _machine_cell(column: Column, value: Any) -> str:
    """A csv/tsv cell: ISO times, integer seconds, lists joined with commas."""
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
    if column.kind in ("int", "float", "duration") or isinstance(value, (int, float)):
        return text
    if text.startswith(_FORMULA_PREFIXES):
        return "'" + text
    return text


def _machine_cell_reader(column: Column) -> Callable[[dict], str]:
    """`_machine_cell(column, column.value(row))` as one function per column, with a
    shortcut for the value types a column usually holds: a million-row csv calls it
    once per cell."""
    read = column.get or (lambda row, name=column.name: row.get(name))
    kind = column.kind
    if kind == "bool":
        return lambda row: _machine_cell(column, read(row))

    def cell(row: dict) -> str:
        value = read(row)
        if value is None:
            return ""
        kind_of = type(value)
        if kind_of is str and kind != "duration":
            if kind in ("int", "float") or not value.startswith(_FORMULA_PREFIXES):
                return value
        elif kind_of is int and kind in ("int", "duration", "float"):
            return str(value)
        elif kind_of is datetime:
            return value.isoformat()
        elif kind_of is list and kind not in ("int", "float", "duration"):
            text = ",".join(map(str, value))
            return "'" + text if text.startswith(_FORMULA_PREFIXES) else text
        return _machine_cell(column, value)

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


def render(
    rows: Iterable[dict],
    columns: Sequence[Column],
    fmt: str,
    *,
    table_format: str = "simple",
    tz: str = "UTC",
    out=None,
    id_key: str = "id",
) -> int:
    """Write `rows` in `fmt` to `out` (stdout). Returns the number of rows written."""
    out = out if out is not None else sys.stdout
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
    elif fmt in ("csv", "tsv"):
        import csv

        delimiter = "," if fmt == "csv" else "\t"
        writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
        # csv quotes a cell holding "\n" but not a bare CR, which readers take as a row
        # break: rows with one are written fully quoted.
        quoting_writer = csv.writer(out, delimiter=delimiter, lineterminator="\n", quoting=csv.QUOTE_ALL)
        writer.writerow([c.name for c in columns])
        readers = [_machine_cell_reader(c) for c in columns]
        for row in rows:
            cells = [read(row) for read in readers]
            (quoting_writer if "\r" in "".join(cells) else writer).writerow(cells)
            count += 1
    elif fmt == "table":
        from zoneinfo import ZoneInfo

        from tabulate import tabulate

        zone = ZoneInfo(tz)
        body = [[_table_cell(c, c.value(row), zone) for c in columns] for row in rows]
        count = len(body)
        if body:
            out.write(
                tabulate(body, headers=[c.name for c in columns], tablefmt=table_format,
                         disable_numparse=True, missingval="")
                + "\n"
            )
    else:  # validated by the option parser; a bug if reached
        raise ValueError(f"unknown format {fmt!r}")
    out.flush()
    return count


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
    from deskctl.services.sla import describe

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
        breached = f"   breached: {', '.join(sla['breached'])}" if sla.get("breached") else ""
        lines.append(f"  sla: {sla['policy']} ({sla['state']}){breached}")
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
    items = [(m["at"], 0, m) for m in record.get("messages", [])]
    items += [(e["at"], 1, {"kind": "event", **e}) for e in record.get("events", [])]
    items.sort(key=lambda t: (t[0], t[1]))
    for _, _, item in items:
        lines.append("")
        if item["kind"] == "event":
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
