"""Reading conversations: `list` filters, record fields in every format, `show`, the SLA cell, bounds; both engines."""

import csv
import io
import subprocess
import sys

from tests.factories import T0, make_conversation


def test_list_filters(seeded):
    a = make_conversation(seeded, subject="Refund please", assignee="alice", status="open", tags=["refund"])
    b = make_conversation(seeded, subject="Login broken", group="support", channel="chat", priority="high",
                          contact_email="max@example.com")
    c = make_conversation(seeded, subject="Quote", group="sales", status="closed", tags=["refund", "vip"])

    def ids(*args, as_=None):
        return [r["id"] for r in seeded.json("list", *args, as_=as_)]

    assert ids() == [a, b, c]
    assert ids("--status", "open,closed") == [a, c]
    assert ids("--assignee", "alice") == [a]
    assert ids("--mine", as_="alice") == [a]
    assert ids("--unassigned") == [b, c]
    assert ids("--group", "support") == [b]
    assert ids("--location", "lyon") == [c]
    assert ids("--channel", "chat") == [b]
    assert ids("--tag", "refund") == [a, c]
    assert ids("--tag", "refund", "--tag", "vip") == [c]
    assert ids("--priority", "high") == [b]
    assert ids("--query", "MAX@") == [b]
    assert seeded.run("list", "--query", "%").exit_code == 2  # no word to search for
    assert ids("--sort", "-id", "--limit", "2") == [c, b]
    assert ids("--sla", "none") == [a, b, c]
    assert seeded.run("list", "--group", "nope").exit_code == 3
    assert seeded.run("list", "--priority", "asap").exit_code == 2
    assert seeded.run("list", "--created-before", "whenever").exit_code == 2
    empty = seeded.run("list", "--tag", "nothing", fmt="json")
    assert empty.exit_code == 0 and empty.json() == [] and "no conversations matched" in empty.stderr


def test_list_record_fields_and_every_format(seeded):
    cid = make_conversation(seeded, subject="=cmd|' /C calc'!A0", assignee="alice", tags=["b", "a"],
                            watchers=["carol"])
    record = seeded.json("list")[0]
    assert set(record) >= {"id", "subject", "status", "channel", "priority", "assignee", "group", "location",
                           "contact", "tags", "reason", "watchers", "created_at", "updated_at", "boomerang_at",
                           "linked_to", "sla"}
    assert record["contact"] == {"id": 1, "name": "Lea", "email": "lea@example.fr", "vip": False}
    assert record["tags"] == ["a", "b"] and record["watchers"] == ["carol"]
    assert set(record["sla"]) == {"policy", "state", "first_response_due", "next_response_due",
                                  "resolution_due", "breached", "outcome", "late_s"}
    assert record["created_at"] == "2026-11-20T09:00:00+00:00"
    jsonl = seeded.ok("list", fmt="jsonl").jsonl()
    assert jsonl == [record]
    assert seeded.ok("list", fmt="ids").stdout == f"{cid}\n"
    # csv guards the formula for spreadsheets; tsv keeps the value (SPEC §9)
    for fmt, delimiter, subject in (("csv", ",", "'=cmd|' /C calc'!A0"), ("tsv", "\t", "=cmd|' /C calc'!A0")):
        rows = list(csv.DictReader(io.StringIO(seeded.ok("list", fmt=fmt).stdout), delimiter=delimiter,
                                   quoting=csv.QUOTE_MINIMAL if fmt == "csv" else csv.QUOTE_NONE))
        assert rows[0]["id"] == str(cid)
        assert rows[0]["subject"] == subject
        assert rows[0]["tags"] == "a,b"
        assert rows[0]["contact_email"] == "lea@example.fr"
    table = seeded.ok("list", "--format", "table", "--table-format", "github").stdout
    assert table.splitlines()[0].split("|")[1].strip() == "id"
    assert seeded.run("list", "--table-format", "nope").exit_code == 2


def test_show_thread_and_not_found(seeded):
    cid = make_conversation(seeded, subject="Invoice 42")
    record = seeded.json("show", f"#{cid}")[0]
    assert record["id"] == cid
    assert [m["kind"] for m in record["messages"]] == ["inbound"]
    assert record["messages"][0]["author"] == "Lea"
    text = seeded.ok("show", str(cid), "--format", "table").stdout
    assert "Invoice 42" in text and "Hello, I have a question." in text
    assert seeded.run("show", "999").exit_code == 3
    assert seeded.run("show", "abc").exit_code == 2


def test_a_reader_that_stops_early_gets_no_traceback(seeded):
    """`deskctl ... | head -1`: the broken pipe ends the command quietly with exit 0."""
    import os

    from deskctl.models import Message

    cid = make_conversation(seeded, subject="Long thread")
    with seeded.session() as s:
        s.add_all(Message(conversation_id=cid, direction="inbound", channel="email", text="x" * 4000,
                          created_at=T0, cc=[], bcc=[]) for _ in range(100))
    env = {**os.environ, "DESKCTL_DATABASE_URL": seeded.url, "DESKCTL_USER": "root"}
    proc = subprocess.Popen([sys.executable, "-m", "deskctl", "show", str(cid), "--format", "jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout.read(10)
    proc.stdout.close()  # 400 kB are still to come: the next write breaks the pipe
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert stderr == ""


def test_table_sla_cell_says_time_left_or_late(seeded):
    from datetime import timedelta

    seeded.now = (T0 + timedelta(hours=2)).isoformat()
    make_conversation(seeded, subject="Due soon", sla_policy="default", sla_state="ok",
                      first_response_due=T0 + timedelta(hours=4), resolution_due=T0 + timedelta(days=3))
    make_conversation(seeded, subject="Overdue", sla_policy="default", sla_state="breached",
                      first_response_due=T0 + timedelta(minutes=85))
    lines = seeded.ok("list", "--sort", "id", fmt="table").stdout.splitlines()[2:]
    assert "2h left" in lines[0] and "late 35m" in lines[1], lines
    assert "\033[" not in "".join(lines)  # not a terminal: no colour
    assert seeded.json("list")[1]["sla"]["state"] == "breached"


def test_out_of_range_limits_and_impossible_dates_are_usage_errors(seeded):
    """Found by the stress fuzzer: both used to be internal errors (exit 1)."""
    for argv in (("inbox", "--limit", "9223372036854775808"), ("list", "--limit", "1000000001"),
                 ("list", "--created-before", "2026-13-45"), ("audit", "--since", "2026-02-30")):
        result = seeded.run(*argv)
        assert result.exit_code == 2, (argv, result)
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
