"""Machine output that pipelines can trust (SPEC §9): tsv, json, jsonl and ids never alter
a value, only csv guards formulas; `show` keeps the thread view in a pipe; a failing
command prints nothing on stdout; tables check their format name."""

from __future__ import annotations

import csv
import io
import json

import pytest

from deskctl.output import tsv_unescape

PHONE = "+33 6 12 34 56 78"
SUBJECT = "-- urgent"


def _tsv_records(text: str) -> list[dict]:
    lines = text.splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, map(tsv_unescape, line.split("\t")), strict=True)) for line in lines[1:]]


def _new_conversation(desk, subject=SUBJECT, text=f"Call me back on {PHONE}") -> int:
    created = desk.json("new", "--channel", "phone", "--contact", "lea@example.fr", "--name", "Léa Dubois",
                        "--subject", subject, "--group", "billing", text)
    return created[0]["id"]


def test_tsv_json_jsonl_and_ids_keep_a_phone_and_a_dash_subject_as_they_are(seeded):
    contact = seeded.json("contact", "add", "--name", "Léa Dubois", "--email", "lea@example.fr",
                          "--phone", PHONE)[0]
    cid = _new_conversation(seeded)
    phone_row = _tsv_records(seeded.ok("contact", "show", str(contact["id"]), fmt="tsv").stdout)[0]
    assert phone_row["phone"] == PHONE
    conversation = _tsv_records(seeded.ok("list", fmt="tsv").stdout)[0]
    assert conversation["subject"] == SUBJECT and conversation["id"] == str(cid)
    assert seeded.json("list")[0]["subject"] == SUBJECT
    assert seeded.ok("list", fmt="jsonl").jsonl()[0]["subject"] == SUBJECT
    assert seeded.ok("list", fmt="ids").stdout == f"{cid}\n"
    # csv, for spreadsheets, still guards them...
    rows = list(csv.DictReader(io.StringIO(seeded.ok("list", fmt="csv").stdout)))
    assert rows[0]["subject"] == "'" + SUBJECT
    # ...unless told not to, globally or on the command
    for argv in (["--no-formula-guard", "list", "--format", "csv"], ["list", "--format", "csv", "--no-formula-guard"]):
        rows = list(csv.DictReader(io.StringIO(seeded.ok(*argv).stdout)))
        assert rows[0]["subject"] == SUBJECT, argv


def test_tsv_of_a_multiline_value_stays_one_row_and_reads_back(seeded):
    subject = "line one\nline\ttwo \\ end"
    cid = _new_conversation(seeded, subject=subject)
    lines = seeded.ok("list", fmt="tsv").stdout.splitlines()
    assert len(lines) == 2
    assert _tsv_records("\n".join(lines))[0]["subject"] == subject
    assert seeded.json("show", str(cid))[0]["subject"] == subject


def test_show_in_a_pipe_prints_the_thread_unless_a_format_is_given(seeded):
    cid = _new_conversation(seeded)
    seeded.ok("note", str(cid), "Customer sounded upset")
    piped = seeded.ok("show", str(cid))  # CliRunner's stdout is not a terminal: a pipe
    assert piped.stdout.startswith(f"#{cid} {SUBJECT}\n")
    assert f"Call me back on {PHONE}" in piped.stdout and "Customer sounded upset" in piped.stdout
    assert "\033[" not in piped.stdout
    # An explicit format, on the command, globally or from the environment, gives records.
    assert seeded.ok("show", str(cid), "--format", "tsv").stdout.startswith("id\tsubject\t")
    assert json.loads(seeded.ok("--format", "json", "show", str(cid)).stdout)[0]["id"] == cid
    assert seeded.ok("show", str(cid), env={"DESKCTL_FORMAT": "jsonl"}).jsonl()[0]["id"] == cid
    assert seeded.ok("show", str(cid), "--format", "table").stdout.startswith(f"#{cid} ")


def test_show_audit_on_a_terminal_interleaves_every_kind_of_event(seeded, monkeypatch):
    """Bug 1: `show ID --audit` as a table died with KeyError: 'created'."""
    from deskctl import term

    cid = _new_conversation(seeded)
    seeded.ok("claim", str(cid), as_="alice")
    seeded.ok("note", str(cid), "Checked the invoice", as_="alice")
    seeded.ok("watch", str(cid), as_="carol")
    seeded.ok("transfer", str(cid), "--to", "group:support", "--message", "for support", as_="alice")
    seeded.ok("claim", str(cid), as_="bob")
    seeded.ok("pending", str(cid), "--until", "2d", as_="bob")
    seeded.ok("reopen", str(cid), as_="bob")
    seeded.ok("qualify", str(cid), "--tag", "billing", "--priority", "high", as_="bob")
    seeded.ok("release", str(cid), as_="bob")
    seeded.ok("claim", str(cid), as_="bob")
    seeded.ok("resolve", str(cid), as_="bob")
    seeded.ok("close", str(cid), "--reason", "answered", as_="bob")
    kinds = {event["kind"] for event in seeded.json("audit", str(cid))}
    assert {"created", "claimed", "note_added", "watched", "transferred", "pending", "reopened", "qualified",
            "released", "resolved", "closed"} <= kinds

    monkeypatch.setattr(term, "is_tty", lambda stream: True)
    result = seeded.run("show", str(cid), "--audit")
    assert result.exit_code == 0, result
    assert "internal error" not in result.stderr
    events = [line for line in result.stdout.splitlines() if line.startswith("  · ")]
    assert {line.split(": ", 1)[1].split()[0] for line in events} == kinds
    assert f"Call me back on {PHONE}" in result.stdout and "Checked the invoice" in result.stdout


def test_a_command_whose_database_fails_prints_nothing_on_stdout(seeded, tmp_path):
    """SPEC §9: `ingest email --mbox` with the database gone printed the tsv header, then
    exited 75 (its rows come from a generator that meets the database only when read)."""
    mbox = tmp_path / "in.mbox"
    mbox.write_text("From lea@example.fr Fri Nov 20 09:00:00 2026\nFrom: Lea <lea@example.fr>\n"
                    "To: support@desk.example\nSubject: Hi\nMessage-ID: <gone-1@example.fr>\n\nHello\n",
                    encoding="utf-8")
    unreachable = "postgresql+psycopg://postgres@127.0.0.1:9/nowhere"
    for fmt in ("tsv", "csv", "json"):
        result = seeded.run("--db", unreachable, "ingest", "email", "--mbox", str(mbox), fmt=fmt)
        assert result.exit_code != 0, result
        assert result.stdout == "", (fmt, result)


@pytest.mark.parametrize("where", ["global", "command"])
def test_an_unknown_table_format_is_a_usage_error_listing_the_valid_ones(seeded, where):
    argv = ["--table-format", "nonsense", "list"] if where == "global" else ["list", "--table-format", "nonsense"]
    result = seeded.run(*argv)
    assert result.exit_code == 2, result
    assert "nonsense" in result.stderr and "github" in result.stderr and "simple" in result.stderr
    assert result.stdout == ""


def test_tables_line_up_wide_characters_and_fit_the_terminal(seeded, monkeypatch):
    from deskctl import term

    _new_conversation(seeded, subject="東京のお客様 🎉 — facture très en retard " * 3)
    monkeypatch.setattr(term, "is_tty", lambda stream: True)
    monkeypatch.setenv("COLUMNS", "100")
    lines = seeded.ok("list").stdout.splitlines()
    assert 90 <= max(term.display_width(line) for line in lines) <= 100
    assert "…" in lines[2] and "東京" in lines[2]
    assert lines[2].startswith("   1  ")  # the id is right-aligned under its header
    assert lines[0].startswith("  id  ")
    # The same table in a pipe is not cut.
    monkeypatch.setattr(term, "is_tty", lambda stream: False)
    piped = seeded.ok("list", "--format", "table").stdout.splitlines()
    assert "…" not in piped[2].split("  東京")[1].split("  ")[0] or len(piped[2]) > 100
