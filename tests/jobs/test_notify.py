"""The `notify` job against a real SMTP server on loopback (aiosmtpd): replies and
transcripts arrive with the right headers, rows are marked sent once, transient
failures are retried with backoff, a crashed send is re-sent once."""

from __future__ import annotations

import dataclasses
import logging
import socket
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from deskctl.config import load_settings
from deskctl.errors import ConfigError, UsageError
from deskctl.jobs import notify
from deskctl.models import Conversation, Note, Outbox, User
from deskctl.services.outbound import notifications
from deskctl.services.outbound import transcripts as mail
from tests.factories import T0, make_conversation

NOW = T0 + timedelta(hours=1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sink:
    """An aiosmtpd handler that keeps every envelope, or answers DATA with `data_reply`."""

    def __init__(self):
        self.envelopes: list[tuple[str, list[str], bytes]] = []
        self.data_reply: str | None = None

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def messages(self):
        return [message_from_bytes(content, policy=policy.default) for _, _, content in self.envelopes]


@pytest.fixture
def smtp_server():
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    sink.port = controller.port
    yield sink
    controller.stop()


def settings_for(desk, port: int | None = None, **smtp):
    base = load_settings(None, desk.url)
    if port is not None:
        smtp = {"host": "127.0.0.1", "port": port, "timeout": 5, **smtp}
    return dataclasses.replace(base, smtp=dataclasses.replace(base.smtp, **smtp))


def run_notify(desk, settings, now=NOW) -> dict:
    with desk.session() as session:
        return notify.run(session, now=now, settings=settings)


def outbox(desk) -> list[dict]:
    """Outbox rows through the ORM (aware UTC datetimes on both engines)."""
    with desk.session() as session:
        return [{c.key: getattr(row, c.key) for c in Outbox.__table__.columns}
                for row in session.scalars(select(Outbox).order_by(Outbox.id))]


def enqueue_email(desk, key="k1", recipient="lea@example.fr", now=T0):
    with desk.session() as session:
        notifications.enqueue(session, kind="email", dedupe_key=key, recipient=recipient, subject="hello",
                              body="body text", now=now)


def test_reply_arrives_with_threading_headers_and_is_sent_once(seeded, smtp_server, tmp_path):
    cid = make_conversation(seeded, assignee="alice")
    seeded.now = T0.isoformat()
    attachment = tmp_path / "invoice.pdf"
    attachment.write_bytes(b"%PDF-1.4 fake invoice\n" * 50)
    record = seeded.json("reply", cid, "Here is your invoice.", "--cc", "boss@example.fr",
                         "--bcc", "audit@example.fr", "--attach", attachment, as_="alice")[0]

    counts = run_notify(seeded, settings_for(seeded, smtp_server.port))
    assert counts["sent"] == 1 and counts["failed"] == 0 and counts["retried"] == 0

    [(mail_from, rcpt_tos, _)] = smtp_server.envelopes
    assert mail_from == "support@example.com"
    assert sorted(rcpt_tos) == ["audit@example.fr", "boss@example.fr", "lea@example.fr"]
    [msg] = smtp_server.messages()
    assert msg["Subject"] == f"[#{cid}] Re: Invoice question"
    assert msg["From"] == "support@example.com"
    assert msg["To"].addresses[0].addr_spec == "lea@example.fr"
    assert msg["Cc"] == "boss@example.fr"
    assert msg["Bcc"] is None  # in the envelope only
    assert msg["In-Reply-To"] == f"<m{cid}@example.fr>"
    assert msg["References"] == f"<m{cid}@example.fr>"
    assert msg["Message-ID"] == f"<{record['external_id']}>"
    assert msg["X-Deskctl-Dedupe"] == f"email:{record['external_id']}"
    assert msg.get_body(("plain",)).get_content().strip() == "Here is your invoice."
    [part] = list(msg.iter_attachments())
    assert part.get_filename() == "invoice.pdf"
    assert part.get_content() == attachment.read_bytes()

    [row] = outbox(seeded)
    assert row["status"] == "sent" and row["attempts"] == 1 and row["sent_at"] is not None

    again = run_notify(seeded, settings_for(seeded, smtp_server.port), now=NOW + timedelta(hours=1))
    assert again["sent"] == 0
    assert len(smtp_server.envelopes) == 1


def test_transcript_has_messages_and_closing_note_but_never_notes(seeded, smtp_server):
    cid = make_conversation(seeded, assignee="alice")
    seeded.now = (T0 + timedelta(minutes=5)).isoformat()
    seeded.ok("reply", cid, "We refunded the invoice.", as_="alice")
    with seeded.session() as session:
        alice = session.scalar(select(User).where(User.handle == "alice"))
        session.add(Note(conversation_id=cid, author_id=alice.id, text="SECRET internal remark",
                         created_at=T0 + timedelta(minutes=6), updated_at=T0 + timedelta(minutes=6)))
        conv = session.get(Conversation, cid)
        conv.closing_note = "Refund issued, customer happy."
        session.flush()
        mail.queue_transcript(session, cid, "lea.copy@example.fr", actor="alice", now=NOW,
                              settings=settings_for(seeded))

    [event] = seeded.rows("SELECT actor, data FROM events WHERE kind = 'transcript_sent'")
    assert event["actor"] == "alice"
    assert "lea.copy@example.fr" in str(event["data"])

    counts = run_notify(seeded, settings_for(seeded, smtp_server.port), now=NOW + timedelta(minutes=1))
    assert counts["sent"] == 2  # the reply and the transcript
    transcript = [m for m in smtp_server.messages() if "Transcript" in m["Subject"]]
    assert len(transcript) == 1
    msg = transcript[0]
    assert msg["Subject"] == f"[#{cid}] Transcript: Invoice question"
    assert msg["To"] == "lea.copy@example.fr"
    assert msg["Auto-Submitted"] == "auto-generated"
    body = msg.get_content()
    assert "Hello, I have a question." in body
    assert "We refunded the invoice." in body
    assert "Refund issued, customer happy." in body
    assert body.index("Hello, I have a question.") < body.index("We refunded the invoice.")
    assert "SECRET" not in body
    assert b"SECRET" not in smtp_server.envelopes[-1][2]


def test_transcript_rejects_a_bad_address(seeded):
    cid = make_conversation(seeded)
    with seeded.session() as session:
        with pytest.raises(UsageError):
            mail.queue_transcript(session, cid, "not an address", actor="root", now=NOW,
                                  settings=settings_for(seeded))
    assert outbox(seeded) == []


def test_refused_connection_is_retried_with_backoff_and_not_lost(seeded):
    enqueue_email(seeded)
    dead = settings_for(seeded, free_port())  # nothing listens there

    counts = run_notify(seeded, dead)
    assert counts == {**counts, "sent": 0, "retried": 1, "failed": 0}
    [row] = outbox(seeded)
    assert row["status"] == "retrying" and row["attempts"] == 1
    assert row["next_attempt_at"] == NOW + timedelta(minutes=1)
    assert "cannot connect" in row["last_error"]

    # Not due yet: nothing is tried.
    assert run_notify(seeded, dead, now=NOW + timedelta(seconds=30))["retried"] == 0
    # Second failure: the next delay is 5 minutes.
    run_notify(seeded, dead, now=NOW + timedelta(minutes=1))
    [row] = outbox(seeded)
    assert row["attempts"] == 2
    assert row["next_attempt_at"] == NOW + timedelta(minutes=6)


def test_retried_row_is_delivered_when_the_server_is_back(seeded, smtp_server):
    enqueue_email(seeded)
    run_notify(seeded, settings_for(seeded, free_port()))
    counts = run_notify(seeded, settings_for(seeded, smtp_server.port), now=NOW + timedelta(minutes=2))
    assert counts["sent"] == 1
    assert len(smtp_server.envelopes) == 1
    assert outbox(seeded)[0]["status"] == "sent"


def test_4xx_is_retried_5xx_fails_for_good(seeded, smtp_server):
    enqueue_email(seeded, key="a")
    smtp_server.data_reply = "451 4.3.0 try again later"
    assert run_notify(seeded, settings_for(seeded, smtp_server.port))["retried"] == 1
    assert outbox(seeded)[0]["status"] == "retrying"

    smtp_server.data_reply = "550 5.1.1 mailbox unavailable"
    counts = run_notify(seeded, settings_for(seeded, smtp_server.port), now=NOW + timedelta(minutes=5))
    assert counts["failed"] == 1
    [row] = outbox(seeded)
    assert row["status"] == "failed" and "550" in row["last_error"]
    # Failed rows are never retried.
    smtp_server.data_reply = None
    assert run_notify(seeded, settings_for(seeded, smtp_server.port), now=NOW + timedelta(days=3))["sent"] == 0


def test_gives_up_after_eight_attempts(seeded):
    enqueue_email(seeded)
    with seeded.session() as session:
        session.execute(Outbox.__table__.update().values(attempts=7))
    counts = run_notify(seeded, settings_for(seeded, free_port()))
    assert counts["failed"] == 1
    [row] = outbox(seeded)
    assert row["status"] == "failed" and row["attempts"] == 8 and "gave up" in row["last_error"]


def test_a_row_left_sending_by_a_crash_is_resent_once(seeded, smtp_server):
    enqueue_email(seeded, key="crashed")
    enqueue_email(seeded, key="in-flight")
    with seeded.session() as session:
        # "crashed": claimed 11 minutes ago and never marked (lease of 10 minutes is over);
        # "in-flight": claimed a minute ago by a worker that is still sending it.
        session.execute(Outbox.__table__.update().where(Outbox.dedupe_key == "crashed")
                        .values(status="sending", claimed_at=NOW - timedelta(minutes=11), attempts=1))
        session.execute(Outbox.__table__.update().where(Outbox.dedupe_key == "in-flight")
                        .values(status="sending", claimed_at=NOW - timedelta(minutes=1), attempts=1))
    counts = run_notify(seeded, settings_for(seeded, smtp_server.port))
    assert counts["sent"] == 1 and counts["recovered"] == 1
    assert [m["X-Deskctl-Dedupe"] for m in smtp_server.messages()] == ["crashed"]
    rows = {r["dedupe_key"]: r for r in outbox(seeded)}
    assert rows["crashed"]["status"] == "sent" and rows["crashed"]["attempts"] == 2
    assert rows["in-flight"]["status"] == "sending"
    assert run_notify(seeded, settings_for(seeded, smtp_server.port))["sent"] == 0
    assert len(smtp_server.envelopes) == 1


def test_claim_commits_and_a_second_claim_gets_nothing(seeded):
    enqueue_email(seeded, key="x")
    with seeded.session() as first:
        assert len(notifications.claim(first, now=NOW)) == 1
    with seeded.session() as second:
        assert notifications.claim(second, now=NOW) == []
    assert outbox(seeded)[0]["status"] == "sending"


def test_without_smtp_host_messages_go_to_the_log(seeded, caplog):
    cid = make_conversation(seeded, assignee="alice")
    seeded.now = T0.isoformat()
    seeded.ok("reply", cid, "Logged answer", as_="alice")
    with seeded.session() as session:
        ids = list(session.scalars(select(User.id).where(User.handle.in_(["alice", "dave"]))))
        notifications.notify_users(session, ids, conversation_id=cid, event="transferred", subject="New for you",
                                   body="#1 was transferred to you", now=T0, key="1")
    with caplog.at_level(logging.INFO, logger="deskctl.notify"):
        counts = run_notify(seeded, settings_for(seeded), now=NOW + timedelta(days=1))
    # Each delivery counted once: logged, not also "sent" (issue 13 #5: 133 rows gave sent 133, logged 133).
    assert counts["sent"] == 0 and counts["logged"] == 3
    lines = [r.getMessage() for r in caplog.records if r.name == "deskctl.notify"]
    assert len(lines) == 3
    assert any("to lea@example.fr" in line and f"[#{cid}] Re:" in line for line in lines)
    assert any("to dave: New for you" in line for line in lines)
    assert {r["status"] for r in outbox(seeded)} == {"sent"}


def test_notifications_go_by_smtp_to_users_with_an_email(seeded, smtp_server, caplog):
    with seeded.session() as session:
        ids = list(session.scalars(select(User.id).where(User.handle.in_(["alice", "dave"]))))
        notifications.notify_users(session, ids, conversation_id=None, event="boomerang", subject="Back: #4",
                                   body="#4 returned", now=T0, key="9")
    with caplog.at_level(logging.INFO, logger="deskctl.notify"):
        counts = run_notify(seeded, settings_for(seeded, smtp_server.port))
    assert counts["sent"] == 1 and counts["logged"] == 1  # dave has no email: the log
    [(_, rcpt_tos, _)] = smtp_server.envelopes
    assert rcpt_tos == ["alice@desk.example"]
    [msg] = smtp_server.messages()
    assert msg["Subject"] == "Back: #4" and msg.get_content().strip() == "#4 returned"
    assert msg["X-Deskctl-Dedupe"].startswith("boomerang:9:user:")
    assert any("to dave: Back: #4" in r.getMessage() for r in caplog.records)


def test_missing_password_is_a_config_error_before_claiming(seeded, monkeypatch):
    enqueue_email(seeded)
    monkeypatch.delenv("DESKCTL_SMTP_PASSWORD", raising=False)
    settings = settings_for(seeded, free_port(), username="desk")
    with pytest.raises(ConfigError):
        run_notify(seeded, settings)
    assert outbox(seeded)[0]["status"] == "queued"


def test_smtp_auth_uses_the_password_from_the_environment(seeded, monkeypatch):
    """Login is attempted with the env password; a server without AUTH makes it a
    connection-level failure: retried, not lost."""
    enqueue_email(seeded)
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        monkeypatch.setenv("DESKCTL_SMTP_PASSWORD", "s3cret")
        counts = run_notify(seeded, settings_for(seeded, controller.port, username="desk"))
    finally:
        controller.stop()
    assert counts["retried"] == 1 and sink.envelopes == []
    assert outbox(seeded)[0]["status"] == "retrying"


def test_a_row_that_keeps_crashing_the_run_is_given_up(seeded, smtp_server):
    enqueue_email(seeded, key="poison")
    with seeded.session() as session:
        session.execute(Outbox.__table__.update().values(status="sending", attempts=8,
                                                         claimed_at=NOW - timedelta(minutes=30)))
    counts = run_notify(seeded, settings_for(seeded, smtp_server.port))
    assert counts["failed"] == 1 and smtp_server.envelopes == []
    [row] = outbox(seeded)
    assert row["status"] == "failed" and "never finished" in row["last_error"]


def test_an_unsendable_row_fails_alone_and_the_others_go(seeded, smtp_server, caplog):
    enqueue_email(seeded, key="bad")
    enqueue_email(seeded, key="good")
    with seeded.session() as session:
        # smtplib refuses a message with two Resent- blocks (ValueError): not an SMTP error.
        raw = (b"Resent-Date: Fri, 20 Nov 2026 09:00:00 +0000\r\nResent-Date: Fri, 20 Nov 2026 09:01:00 +0000\r\n"
               b"From: a@example.com\r\nTo: lea@example.fr\r\nSubject: x\r\n\r\nbody\r\n")
        session.execute(Outbox.__table__.update().where(Outbox.dedupe_key == "bad").values(raw=raw))
    counts = run_notify(seeded, settings_for(seeded, smtp_server.port))
    assert counts["sent"] == 1 and counts["failed"] == 1
    rows = {r["dedupe_key"]: r for r in outbox(seeded)}
    assert rows["bad"]["status"] == "failed" and "ValueError" in rows["bad"]["last_error"]
    assert rows["good"]["status"] == "sent"
    assert [m["X-Deskctl-Dedupe"] for m in smtp_server.messages()] == ["good"]
