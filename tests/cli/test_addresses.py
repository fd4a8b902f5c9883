"""Addresses (SPEC §13): every address the desk stores or sends to is one RFC 5322
addr-spec. A list, a display-name trick, a comment or a control character is a usage
error (2) with nothing changed, never silently cut; `--cc`/`--bcc` repeat; a bad
address stored before this rule fails its own outbox row cleanly."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from deskctl.models import User
from deskctl.services.addresses import check_address, is_address
from deskctl.services.outbound import notifications
from tests.factories import T0, make_conversation
from tests.jobs.test_notify import outbox, run_notify, settings_for, smtp_server  # noqa: F401 - fixture

BAD = [
    "a@x.example, b@evil.example",           # a list: today only the first was kept
    "a@x.example;b@evil.example",
    '"a@x.example" <b@evil.example>',         # the display name shows one address, mail goes to another
    "Boss <boss@x.example>",                  # a name-addr, not an addr-spec
    "a@x.example\r\nBcc: evil@evil.example",  # header injection
    "a@x.example\nb@evil.example",
    "a@x.example\x00",
    "a@x.example (b@evil.example)",           # a comment the parser would skip
    "<a@x.example>",
    "a@",
    "@x.example",
    "not an address",
    "a" * 250 + "@x.example",
]


@pytest.mark.parametrize("value", BAD)
def test_the_one_validator_refuses_anything_but_one_plain_address(value):
    from deskctl.errors import UsageError

    with pytest.raises(UsageError, match="--cc"):
        check_address(value, "--cc")
    assert not is_address(value)


@pytest.mark.parametrize("value", ["lea@example.fr", "first.last+tag@sub.example.co.uk", '"a b"@x.example'])
def test_plain_addresses_pass_unchanged(value):
    assert check_address(value, "--cc") == value and is_address(value)


def refused(desk, *args, as_="root"):
    before = desk.dump()
    result = desk.run(*args, as_=as_, fmt="json")
    assert result.exit_code == 2, result
    assert result.stdout == ""
    assert "invalid email address" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert desk.dump() == before
    return result


@pytest.mark.parametrize("value", [
    "d@x.example, evil@evil.example", "d@x.example\r\nBcc: evil@evil.example", '"d@x.example" <evil@evil.example>'])
def test_every_address_option_refuses_a_list_a_trick_or_a_line_break(seeded, value):
    cid = make_conversation(seeded, assignee="alice")
    seeded.now = (T0 + timedelta(minutes=10)).isoformat()
    refused(seeded, "user", "add", "dave2", "--email", value)
    refused(seeded, "user", "set", "alice", "--email", value)
    refused(seeded, "contact", "add", "--name", "Max", "--email", value)
    refused(seeded, "contact", "set", "lea@example.fr", "--email", value)
    refused(seeded, "reply", cid, "hi", "--cc", value, as_="alice")
    refused(seeded, "reply", cid, "hi", "--cc", "ok@x.example", "--bcc", value, as_="alice")
    refused(seeded, "close", cid, "--transcript-to", value, as_="alice")
    refused(seeded, "new", "--channel", "email", "--contact", value, "--subject", "S", "hello")
    refused(seeded, "attach", cid, "--contact", value)


def test_cc_and_bcc_repeat_for_several_addresses(seeded):
    cid = make_conversation(seeded, assignee="alice")
    seeded.now = (T0 + timedelta(minutes=10)).isoformat()
    [record] = seeded.json("reply", cid, "hi", "--cc", "a@x.example", "--cc", "b@y.example",
                           "--bcc", "c@z.example", "--bcc", "d@z.example", as_="alice")
    assert record["cc"] == ["a@x.example", "b@y.example"] and record["bcc"] == ["c@z.example", "d@z.example"]
    [row] = seeded.rows("SELECT cc, bcc FROM messages WHERE direction = 'outbound'")
    assert "b@y.example" in str(row["cc"]) and "d@z.example" in str(row["bcc"])


def test_user_and_contact_addresses_are_stored_as_given_and_can_be_cleared(seeded):
    seeded.ok("user", "add", "dave2", "--email", " dave2@x.example ")
    assert seeded.scalar("SELECT email FROM users WHERE handle = 'dave2'") == "dave2@x.example"
    seeded.ok("user", "set", "dave2", "--email", "")
    assert seeded.scalar("SELECT email FROM users WHERE handle = 'dave2'") is None
    [contact] = seeded.json("contact", "add", "--name", "Max", "--email", "Max@Example.org")
    assert contact["email"] == "max@example.org"


def test_a_bad_address_stored_before_the_rule_fails_only_its_own_row(seeded, smtp_server, caplog):  # noqa: F811
    with seeded.session() as session:
        bad_list = User(handle="old1", name="old1", email="d@x.example, evil@evil.example", role="agent",
                        availability="offline", default_availability="available", active=True, created_at=T0)
        bad_crlf = User(handle="old2", name="old2", email="e@x.example\r\nBcc: evil@evil.example", role="agent",
                        availability="offline", default_availability="available", active=True, created_at=T0)
        session.add_all([bad_list, bad_crlf])
        session.flush()
        good = session.query(User).filter_by(handle="alice").one()
        notifications.notify_users(session, [bad_list.id, bad_crlf.id, good.id], event="test", key="1",
                                   conversation_id=None, subject="Hello", body="Body", now=T0)
    caplog.set_level(logging.INFO)
    counts = run_notify(seeded, settings_for(seeded, smtp_server.port), now=T0 + timedelta(minutes=1))
    assert counts["sent"] == 1 and counts["failed"] == 2
    rows = {r["recipient"]: r for r in outbox(seeded)}
    assert rows["alice@desk.example"]["status"] == "sent"
    for address in ("d@x.example, evil@evil.example", "e@x.example\r\nBcc: evil@evil.example"):
        assert rows[address]["status"] == "failed"
        assert rows[address]["last_error"].startswith("invalid recipient address")
    delivered = [rcpt for _, rcpts, _ in smtp_server.envelopes for rcpt in rcpts]
    assert delivered == ["alice@desk.example"]
    assert not any(record.exc_info for record in caplog.records)


def test_a_reply_to_a_contact_with_a_bad_stored_address_is_refused_cleanly(seeded):
    cid = make_conversation(seeded, assignee="alice")
    with seeded.session() as session:
        from deskctl.models import Contact, Conversation

        contact = session.get(Contact, session.get(Conversation, cid).contact_id)
        contact.email = "lea@example.fr\r\nBcc: evil@evil.example"
    seeded.now = (T0 + timedelta(minutes=10)).isoformat()
    before = seeded.dump()
    result = seeded.run("reply", cid, "hi", as_="alice", fmt="json")
    assert result.exit_code == 4, result
    assert "invalid address" in result.stderr and "fix contact #" in result.stderr and result.stdout == ""
    assert seeded.dump() == before
