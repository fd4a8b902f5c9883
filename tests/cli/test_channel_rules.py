"""Per-channel rules (SPEC §10): `rules.channels.<channel>` overrides any rule of §8 for
that channel; `close_requires_reason` with a configured `reasons:` list."""

from __future__ import annotations

import pytest

from tests.factories import make_conversation

CONFIG = """\
clock: {override: true}
reasons: [billing, bug, other]
rules:
  channels:
    email: {transfer_requires_claim: true, transfer_to_user: false, close_requires_reason: true}
"""


@pytest.fixture
def ruled(seeded, monkeypatch):
    config = seeded.tmp_path / "rules.yaml"
    config.write_text(CONFIG)
    monkeypatch.setenv("DESKCTL_CONFIG", str(config))
    return seeded


def test_email_transfer_to_a_user_is_forbidden_chat_is_not(ruled):
    email = make_conversation(ruled, channel="email")
    chat = make_conversation(ruled, channel="chat")
    before = ruled.dump()
    refused = ruled.run("transfer", email, "--to", "user:bob", as_="alice")
    assert refused.exit_code == 5 and "rules.transfer_to_user" in refused.stderr and refused.stdout == ""
    assert ruled.dump() == before
    [change] = ruled.json("transfer", chat, "--to", "user:bob", as_="alice")
    assert change["assignee"] == "bob"


def test_email_transfer_needs_a_claim_first(ruled):
    email = make_conversation(ruled, channel="email")
    refused = ruled.run("transfer", email, "--to", "group:support", as_="alice")
    assert refused.exit_code == 4 and "claim it first" in refused.stderr
    ruled.ok("claim", email, as_="alice")
    [change] = ruled.json("transfer", email, "--to", "group:support", as_="alice")
    assert change["group"] == "support" and change["assignee"] is None
    # chat needs no claim (the global rule)
    chat = make_conversation(ruled, channel="chat")
    ruled.ok("transfer", chat, "--to", "group:support", as_="alice")


def test_bulk_transfer_mixing_channels_is_atomic(ruled):
    email = make_conversation(ruled, channel="email")
    chat = make_conversation(ruled, channel="chat")
    before = ruled.dump()
    refused = ruled.run("transfer", chat, email, "--to", "user:bob", as_="alice")
    assert refused.exit_code == 5 and f"#{email}" in refused.stderr and f"#{chat}" not in refused.stderr
    assert ruled.dump() == before


def test_close_requires_a_listed_reason_on_email(ruled):
    email = make_conversation(ruled, channel="email", assignee="alice", status="open")
    chat = make_conversation(ruled, channel="chat", assignee="alice", status="open")
    before = ruled.dump()
    missing = ruled.run("close", email, as_="alice")
    assert missing.exit_code == 2 and "--reason" in missing.stderr and "billing, bug, other" in missing.stderr
    unlisted = ruled.run("close", chat, "--reason", "weather", as_="alice")
    assert unlisted.exit_code == 2 and "invalid contact reason 'weather'" in unlisted.stderr
    assert "(--reason)" in unlisted.stderr
    assert ruled.dump() == before
    ruled.ok("close", chat, as_="alice")  # chat: no reason needed
    [change] = ruled.json("close", email, "--reason", "bug", as_="alice")
    assert change["status"] == "closed"
    assert ruled.json("show", email)[0]["reason"] == "bug"
    # qualify checks the list too
    assert ruled.run("qualify", email, "--reason", "weather", as_="alice").exit_code == 2


def test_bad_channel_rules_config_is_78(seeded):
    config = seeded.tmp_path / "bad.yaml"
    for text, key in (("rules: {channels: {fax: {transfer_to_user: false}}}\n", "rules.channels.fax"),
                      ("rules: {channels: {email: {transfer_to_person: false}}}\n",
                       "rules.channels.email.transfer_to_person"),
                      ("rules: {channels: {email: {close_requires_reason: maybe}}}\n",
                       "rules.channels.email.close_requires_reason"),
                      ("reasons: billing\n", "reasons")):
        config.write_text(text)
        result = seeded.run("list", env={"DESKCTL_CONFIG": str(config)})
        assert result.exit_code == 78 and key in result.stderr, (text, result)
