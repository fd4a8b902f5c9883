"""`deskctl contact import FILE.csv`: contacts upserted by email from a CSV (SPEC §12).

All or nothing: every line is checked first and every bad one reported with its line
number (exit 65, nothing written); then one INSERT executemany creates the new contacts
and one UPDATE executemany changes the known ones, in the caller's transaction.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import String, bindparam, insert, select, update

from deskctl.errors import DataError, UsageError
from deskctl.models import Contact, Conversation
from deskctl.services.actor import Actor
from deskctl.services.conversations import permissions
from deskctl.services.conversations.selection import chunks
from deskctl.services.directory.contacts import _ATTR_KEY, normalize_email
from deskctl.services.sla import deadlines as sla

# Header name (case-insensitive) → contact field; any other column is a free attribute.
FIELDS = {"email": "email", "name": "name", "phone": "phone", "account": "account_id",
          "account_id": "account_id", "vip": "vip"}
EXPECTED_HEADER = "email,name,phone,account,vip"
_VIP = {"true": True, "yes": True, "y": True, "1": True, "false": False, "no": False, "n": False, "0": False}
_TABLE = Contact.__table__


def _length(column: str) -> int:
    length = cast(String, _TABLE.c[column].type).length
    assert length is not None, f"contacts.{column} is a String with a length"
    return length


_LENGTHS = {name: _length(name) for name in ("name", "email", "phone", "account_id")}


class BadLines(DataError):
    """Every bad line, one stderr line each, then the verdict: nothing was imported."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"{len(problems)} bad line{'s' if len(problems) != 1 else ''} in {source}; "
                         "nothing imported")

    def show(self, file=None) -> None:
        for problem in self.problems:
            DataError(problem).show(file)
        super().show(file)


@dataclass(frozen=True)
class ContactRow:
    line: int
    email: str
    fields: dict  # contact field → value, only for non-empty cells
    attributes: dict


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    unchanged: int  # known contacts the file gives nothing new for

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


def parse_csv(data: bytes, source: str) -> list[ContactRow]:
    """The CSV's contact rows, or BadLines naming every bad line. Blank lines and lines
    whose cells are all empty are skipped."""
    text, undecodable = _decode(data)
    problems: list[str] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header, start = None, 1
    while header is None:
        try:
            record = next(reader)
        except StopIteration:
            raise BadLines(source, [f"line 1: no header row (expected {EXPECTED_HEADER})"]) from None
        except csv.Error as exc:
            raise BadLines(source, [f"line {start}: {exc}"]) from None
        if _first_bad(undecodable, start, reader.line_num) is not None:
            raise BadLines(source, [f"line {start}: not valid UTF-8 text"])
        if any(cell.strip() for cell in record):
            header = record
        else:
            start = reader.line_num + 1
    columns = _columns(header, start, problems)
    if problems:
        raise BadLines(source, problems)
    rows: list[ContactRow] = []
    seen: dict[str, int] = {}
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(f"line {start}: {exc}")
            continue
        bad_text = _first_bad(undecodable, start, reader.line_num)
        if bad_text is not None:
            problems.append(f"line {bad_text}: not valid UTF-8 text")
            continue
        if not any(cell.strip() for cell in record):
            continue
        try:
            row = _row(record, columns, start, len(header))
        except UsageError as exc:
            problems.append(f"line {start}: {exc.format_message()}")
            continue
        if row.email in seen:
            problems.append(f"line {start}: duplicate email {row.email} (first on line {seen[row.email]})")
            continue
        seen[row.email] = start
        rows.append(row)
    if problems:
        raise BadLines(source, problems)
    return rows


def _decode(data: bytes) -> tuple[str, list[int]]:
    """UTF-8 (a BOM allowed) line by line, so each undecodable line is known by number;
    such lines are decoded with replacement characters only to keep parsing."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    parts, bad = [], []
    for number, raw in enumerate(data.splitlines(keepends=True), 1):
        try:
            parts.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            bad.append(number)
            parts.append(raw.decode("utf-8", "replace"))
    return "".join(parts), bad


def _first_bad(undecodable: list[int], first: int, last: int) -> int | None:
    return next((n for n in undecodable if first <= n <= last), None)


def _columns(header: list[str], line: int, problems: list[str]) -> list[tuple[str, str]]:
    """(kind, key) per column: ("field", contact field) or ("attr", attribute name)."""
    columns: list[tuple[str, str]] = []
    seen: set[str] = set()
    for number, raw in enumerate(header, 1):
        name = raw.strip()
        field = FIELDS.get(name.lower())
        key = field or name
        if not name:
            problems.append(f"line {line}: column {number} has no name")
        elif field is None and not _ATTR_KEY.match(name):
            problems.append(f"line {line}: column {name!r} is not a valid attribute name "
                            "(letters, digits, _ . : -, at most 64)")
        elif key in seen:
            problems.append(f"line {line}: column {name!r} appears twice")
        seen.add(key)
        columns.append(("field" if field else "attr", key))
    if "email" not in seen:
        problems.append(f"line {line}: no email column (expected {EXPECTED_HEADER}, plus any attribute columns)")
    return columns


def _row(record: list[str], columns: list[tuple[str, str]], line: int, width: int) -> ContactRow:
    if len(record) != width:
        raise UsageError(f"{len(record)} fields, the header has {width}")
    fields: dict = {}
    attributes: dict = {}
    for (kind, key), raw in zip(columns, record, strict=True):
        value = raw.strip()
        if "\x00" in value:
            raise UsageError(f"{key} contains a NUL character")
        if not value:
            continue
        if kind == "attr":
            attributes[key] = value
        elif key == "vip":
            if value.lower() not in _VIP:
                raise UsageError(f"invalid vip value {value!r} (use true/false, yes/no or 1/0)")
            fields["vip"] = _VIP[value.lower()]
        else:
            if len(value) > _LENGTHS[key]:
                raise UsageError(f"{key} is longer than {_LENGTHS[key]} characters")
            fields[key] = value
    if "email" not in fields:
        raise UsageError("no email")
    email = normalize_email(fields.pop("email"), "email")
    return ContactRow(line, email, fields, attributes)


def import_contacts(session, actor: Actor, data: bytes, *, source: str, now: datetime, settings,
                    dry_run: bool = False) -> ImportResult:
    """Check the whole CSV, then create the unknown emails and update the known ones.

    An empty cell leaves an existing contact's value as it is (and gives a new contact
    the default: the email's local part as name, not VIP, no attribute). Attributes are
    merged into those a contact has. A VIP change refreshes the SLA of that contact's
    conversations that are not closed."""
    permissions.require_supervisor(actor, "contact import")
    rows = parse_csv(data, source)
    existing: dict[str, dict] = {}
    for chunk in chunks([r.email for r in rows]):
        for found in session.execute(select(_TABLE).where(_TABLE.c.email.in_(chunk))).mappings():
            existing[found["email"]] = dict(found)
    creates, updates, vip_changed = [], [], []
    for row in rows:
        current = existing.get(row.email)
        if current is None:
            creates.append({
                "name": row.fields.get("name") or row.email.partition("@")[0], "email": row.email,
                "phone": row.fields.get("phone"), "account_id": row.fields.get("account_id"),
                "vip": row.fields.get("vip", False), "attributes": row.attributes, "created_at": now,
            })
            continue
        wanted = {key: row.fields.get(key, current[key]) for key in ("name", "phone", "account_id", "vip")}
        wanted["attributes"] = {**(current["attributes"] or {}), **row.attributes}
        if any(wanted[key] != current[key] for key in wanted):
            updates.append({"b_id": current["id"], **{f"b_{key}": value for key, value in wanted.items()}})
            if bool(wanted["vip"]) != bool(current["vip"]):
                vip_changed.append(current["id"])
    result = ImportResult(created=len(creates), updated=len(updates),
                          unchanged=len(rows) - len(creates) - len(updates))
    if dry_run:
        return result
    conn = session.connection()
    if creates:
        conn.execute(insert(_TABLE), creates)
    if updates:
        conn.execute(update(_TABLE).where(_TABLE.c.id == bindparam("b_id")).values(
            name=bindparam("b_name"), phone=bindparam("b_phone"), account_id=bindparam("b_account_id"),
            vip=bindparam("b_vip"), attributes=bindparam("b_attributes")), updates)
    if vip_changed:
        open_ids: list[int] = []
        for chunk in chunks(vip_changed):
            open_ids.extend(session.scalars(select(Conversation.id).where(
                Conversation.contact_id.in_(chunk), Conversation.status != "closed")))
        if open_ids:
            sla.refresh(session, open_ids, now=now, settings=settings)
    return result
