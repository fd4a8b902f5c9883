"""Automations (SPEC §11): rules run inside the transaction that stores the event, from
the command line, on both engines."""

from __future__ import annotations

import json
from email import message_from_bytes, policy

import pytest

from tests.factories import email_message, ingest_mail

T0 = "2026-11-20T10:00:00+00:00"
DATE = "Fri, 20 Nov 2026 10:00:00 +0000"


@pytest.fixture
def configure(seeded, tmp_path, monkeypatch):
    """Write the desk's configuration (a replay desk: DESKCTL_NOW is honoured)."""

    def write(text: str):
        path = tmp_path / "automations.yaml"
        path.write_text("clock: {override: true}\nsmtp: {from: 'Support <support@desk.example>'}\n" + text)
        monkeypatch.setenv("DESKCTL_CONFIG", str(path))
        return path

    seeded.now = T0
    return write


def automation_events(desk):
    return [(r["conversation_id"], json.loads(r["data"]) if isinstance(r["data"], str) else r["data"])
            for r in desk.rows("SELECT conversation_id, data FROM events WHERE kind = 'automation' ORDER BY id")]


def outbox_mail(desk):
    return [message_from_bytes(bytes(r["raw"]), policy=policy.default) for r in
            desk.rows("SELECT raw FROM outbox WHERE kind = 'email' ORDER BY id")]


ACK = """
automations:
  - name: accuse-reception
    on: [created]
    if: {channel: [email]}
    then: {reply: ack}
"""


def test_auto_acknowledgement_with_loop_protection(seeded, configure, tmp_path):
    configure(ACK)
    seeded.ok("template", "add", "ack", "Bonjour {contact.name}, nous avons bien reçu votre message.", as_="carol")

    def mail(mid, sender, **headers):
        msg = email_message(mid, sender=sender, subject=f"Question {mid}", date=DATE, body="Bonjour")
        for name, value in headers.items():
            msg[name.replace("_", "-")] = value
        [result] = ingest_mail(seeded, tmp_path, msg).json()
        return result["id"]

    first = mail("m1", "Léa Dubois <lea@example.fr>")
    [sent] = outbox_mail(seeded)
    assert sent["To"] == "Léa Dubois <lea@example.fr>" and sent["Auto-Submitted"] == "auto-replied"
    assert sent["In-Reply-To"] == "<m1>" and sent["Subject"] == f"[#{first}] Re: Question m1"
    assert "Bonjour Léa Dubois, nous avons bien reçu" in sent.get_content()
    out = seeded.json("show", first)[0]["messages"]
    assert [m["kind"] for m in out] == ["inbound", "outbound"]
    # Not a response: the first-response clock still runs.
    assert seeded.scalar("SELECT first_response_at FROM conversations WHERE id = :id", id=first) is None

    # Never an answer to automatic mail, lists, or the desk's own addresses.
    skipped = {
        mail("m2", "robot@example.org", Auto_Submitted="auto-replied"): "Auto-Submitted: auto-replied",
        mail("m3", "news@example.org", Precedence="bulk"): "Precedence: bulk",
        mail("m4", "list@example.org", List_Id="<users.example.org>"): "List-Id",
        mail("m5", "alice@desk.example"): "from the desk's own address",
        mail("m6", "support@desk.example"): "from the desk's own address",
        # Lea again, within automation_reply_interval (1h): no second answer.
        mail("m7", "lea@example.fr"): "answered automatically within automation_reply_interval",
    }
    # Auto-Submitted: no is an ordinary message.
    answered = mail("m8", "paul@example.org", Auto_Submitted="no")
    assert len(outbox_mail(seeded)) == 2
    fired = dict(automation_events(seeded))
    for cid, reason in skipped.items():
        assert fired[cid]["changes"] == {"reply_skipped": reason}
    assert fired[answered]["changes"] == {"reply": "ack"} and fired[first]["rule"] == "accuse-reception"

    # Past the interval, Lea gets an answer again.
    seeded.now = "2026-11-20T11:30:00+00:00"
    later = mail("m9", "lea@example.fr")
    assert [m["To"] for m in outbox_mail(seeded)][-1] == "Léa Dubois <lea@example.fr>"
    assert dict(automation_events(seeded))[later]["changes"] == {"reply": "ack"}


ROUTING = """
automations:
  - name: facturation
    on: [created, message_in]
    if: {subject: "(?i)facture|invoice", channel: [chat, email]}
    then: {group: billing, tag: [billing], priority: high, note: "Routed by keyword", watch: [carol]}
    stop: true
  - name: catch-all
    on: [created]
    then: {tag: [triage]}
  - name: on-close
    on: [closed]
    if: {group: [billing]}
    then: {tag: [closed-billing]}
"""


def test_routing_by_keyword_stop_and_closed(seeded, configure, tmp_path):
    configure(ROUTING)
    lines = tmp_path / "in.jsonl"
    lines.write_text("\n".join(json.dumps(line) for line in [
        {"channel": "chat", "thread": "t1", "id": "c1", "at": T0, "from": {"name": "Léa", "email": "lea@example.fr"},
         "text": "Ma facture est fausse", "subject": "Facture de novembre"},
        {"channel": "chat", "thread": "t2", "id": "c2", "at": T0, "from": {"name": "Paul", "email": "p@example.org"},
         "text": "Bonjour", "subject": "Hello"},
    ]) + "\n")
    results = seeded.json("ingest", "jsonl", lines)
    routed, other = (r["id"] for r in results)
    conv = {cid: seeded.json("show", cid)[0] for cid in (routed, other)}
    assert conv[routed]["group"] == "billing" and conv[routed]["location"] == "paris"
    assert conv[routed]["priority"] == "high" and conv[routed]["tags"] == ["billing"]
    assert conv[routed]["watchers"] == ["carol"]
    assert [m["text"] for m in conv[routed]["messages"] if m["kind"] == "note"] == ["Routed by keyword"]
    # stop: the catch-all never saw the routed conversation
    assert conv[other]["tags"] == ["triage"] and conv[other]["group"] is None
    assert [(cid, d["rule"]) for cid, d in automation_events(seeded)] == [(routed, "facturation"),
                                                                           (other, "catch-all")]
    fired = automation_events(seeded)[0][1]
    assert fired["on"] == ["created", "message_in"] and fired["changes"]["group"] == "billing"

    # closing runs the `closed` rules
    seeded.ok("close", routed, other, "--tag", "done")
    assert seeded.json("show", routed)[0]["tags"] == ["billing", "closed-billing", "done"]
    assert seeded.json("show", other)[0]["tags"] == ["done", "triage"]


SLA = """
sla:
  policies:
    - {name: default, first_response: 1h, hours: 24x7}
automations:
  - name: escalate-late
    on: [sla_breached]
    then: {priority: urgent, assign: bob, tag: [late]}
"""


def test_sla_breached_rule_runs_in_the_sweep(seeded, configure, tmp_path):
    configure(SLA)
    msg = email_message("late1", sender="lea@example.fr", subject="Help", date=DATE, body="?")
    [result] = ingest_mail(seeded, tmp_path, msg).json()
    cid = result["id"]
    assert automation_events(seeded) == []
    seeded.now = "2026-11-20T10:50:00+00:00"
    seeded.ok("jobs", "run", "sla-sweep")  # a warning only
    assert automation_events(seeded) == []
    seeded.now = "2026-11-20T11:30:00+00:00"
    seeded.ok("jobs", "run", "sla-sweep")
    [(fired_on, data)] = automation_events(seeded)
    assert fired_on == cid and data["on"] == ["sla_breached"]
    assert data["changes"] == {"priority": "urgent", "assign": "bob", "tag": ["late"]}
    shown = seeded.json("show", cid)[0]
    assert (shown["priority"], shown["assignee"], shown["tags"]) == ("urgent", "bob", ["late"])
    # once: a second sweep finds nothing new
    seeded.now = "2026-11-20T12:30:00+00:00"
    seeded.ok("jobs", "run", "sla-sweep")
    assert len(automation_events(seeded)) == 1


@pytest.mark.parametrize("text, key, why", [
    ("automations:\n  - {name: r, on: [created], if: {subject: '(unclosed'}, then: {tag: [x]}}\n",
     "automations[0].if.subject", "invalid regular expression"),
    ("automations:\n  - {name: r, on: [created], if: {hours: {outside: paris}}, then: {tag: [x]}}\n",
     "automations[0].if.hours.outside", "unknown calendar 'paris'"),
    ("automations:\n  - {name: r, on: [opened], then: {tag: [x]}}\n", "automations[0].on", "unknown event 'opened'"),
    ("automation_reply_interval: soon\n", "automation_reply_interval", "invalid duration"),
])
def test_config_errors_exit_78_at_load(seeded, configure, text, key, why):
    configure(text)
    result = seeded.run("automation", "list")
    assert result.exit_code == 78 and result.stdout == ""
    assert key in result.stderr and why in result.stderr


def test_unknown_template_or_group_is_78_at_first_use(seeded, configure, tmp_path):
    configure("""
automations:
  - {name: ack, on: [created], then: {reply: nope}}
  - {name: route, on: [created], then: {group: escalations}}
""")
    before = seeded.dump()
    result = seeded.run("automation", "list")
    assert result.exit_code == 78
    assert "automations[0].then.reply: rule 'ack': unknown team template 'nope'" in result.stderr
    assert "automations[1].then.group: rule 'route': unknown group 'escalations'" in result.stderr
    result = seeded.run("new", "--channel", "phone", "--contact", "lea@example.fr", "Call me")
    assert result.exit_code == 78 and "rule 'ack'" in result.stderr
    # the MTA gateway defers (75) rather than bounce; nothing is stored either way
    msg = email_message("x1", sender="lea@example.fr", subject="Hi", date=DATE, body="?")
    result = ingest_mail(seeded, tmp_path, msg)
    assert result.exit_code == 75 and "rule 'ack'" in result.stderr
    assert seeded.dump() == before


def test_automation_test_changes_nothing(seeded, configure, tmp_path):
    configure(ACK + """
  - name: facturation
    on: [created]
    if: {subject: "(?i)facture"}
    then: {group: billing, tag: [billing], note: "n", watch: [carol]}
""")
    seeded.ok("template", "add", "ack", "Bonjour {contact.name}", as_="carol")
    before = seeded.dump()
    msg = email_message("t1", sender="lea@example.fr", subject="Facture", date=DATE, body="?")
    path = tmp_path / "t1.eml"
    path.write_bytes(msg.as_bytes())
    records = seeded.json("automation", "test", "--mail", path)
    assert [(r["rule"], r["action"], r["input"]) for r in records] == [
        ("accuse-reception", "created", "t1"), ("facturation", "created", "t1")]
    assert records[0]["changes"] == {"reply": "ack"}
    assert records[1]["changes"] == {"group": "billing", "tag": ["billing"], "watch": ["carol"], "note": "n"}
    lines = tmp_path / "t.jsonl"
    lines.write_text(json.dumps({"channel": "chat", "thread": "x", "id": "1", "at": T0, "text": "Facture ?",
                                 "subject": "Facture", "from": {"email": "lea@example.fr"}}) + "\n")
    [record] = seeded.json("automation", "test", "--jsonl", lines)
    assert (record["rule"], record["input"]) == ("facturation", "line 1")
    result = seeded.run("automation", "test", "--jsonl", lines, "--mail", path)
    assert result.exit_code == 2
    lines.write_text("not json\n")
    result = seeded.run("automation", "test", "--jsonl", lines)
    assert result.exit_code == 65 and "line 1: would be quarantined" in result.stderr
    assert seeded.dump() == before


def test_auto_close_runs_the_closed_rules(seeded, configure, tmp_path):
    configure("""
automations:
  - {name: archive, on: [closed], if: {text: "(?i)merci"}, then: {tag: [thanked]}}
""")
    msg = email_message("ty1", sender="lea@example.fr", subject="Thanks", date=DATE, body="Merci beaucoup !")
    [result] = ingest_mail(seeded, tmp_path, msg).json()
    cid = result["id"]
    seeded.ok("resolve", cid)
    seeded.now = "2026-11-25T10:00:00+00:00"  # auto-close.after is 4 days
    seeded.ok("jobs", "run", "auto-close")
    shown = seeded.json("show", cid)[0]
    assert shown["status"] == "closed" and shown["tags"] == ["thanked"]
    assert [data["on"] for _, data in automation_events(seeded)] == [["closed"]]


def test_list_and_config_show_round_trip(seeded, configure, tmp_path, monkeypatch):
    configure(ROUTING)
    rules = seeded.json("automation", "list")
    assert [(r["position"], r["name"], r["on"], r["stop"]) for r in rules] == [
        (1, "facturation", ["created", "message_in"], True), (2, "catch-all", ["created"], False),
        (3, "on-close", ["closed"], False)]
    assert rules[0]["if"] == {"subject": "(?i)facture|invoice", "channel": ["chat", "email"]}
    # `config show` writes the bare YAML 1.1 `on` key so that it reads back as "on"
    shown = tmp_path / "shown.yaml"
    shown.write_text(seeded.ok("config", "show").stdout)
    monkeypatch.setenv("DESKCTL_CONFIG", str(shown))
    assert seeded.json("automation", "list") == rules
