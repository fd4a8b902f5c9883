"""The routing keys of the configuration (SPEC §10): defaults, per-channel rules, rona."""

from __future__ import annotations

from datetime import timedelta

import pytest

from deskctl.config import load_settings
from deskctl.errors import ConfigError


def settings_from(tmp_path, text):
    path = tmp_path / "deskctl.yaml"
    path.write_text(text)
    return load_settings(str(path))


def test_defaults_pull_two_minutes_five_each_and_the_route_job(tmp_path):
    s = settings_from(tmp_path, "")
    assert (s.routing.mode, s.routing.offer_timeout, s.routing.capacity_for("chat")) == ("pull", timedelta(minutes=2), 5)
    assert s.jobs["route"].every == timedelta(seconds=30)
    assert s.reasons is None and s.rules_for("email") == s.rules
    assert "rona" in s.availability_states


def test_capacity_per_channel_and_rules_per_channel_inherit_the_rest(tmp_path):
    s = settings_from(tmp_path, "routing: {mode: offer, offer_timeout: 45s, capacity: {chat: 3, email: 10}}\n"
                                "rules: {close_requires_tag: true, channels: {email: {transfer_to_user: false}}}\n"
                                "reasons: [billing, bug]\n")
    assert (s.routing.capacity_for("chat"), s.routing.capacity_for("email"), s.routing.capacity_for("sms")) == (3, 10, 5)
    assert s.routing.offer_timeout == timedelta(seconds=45)
    email, chat = s.rules_for("email"), s.rules_for("chat")
    assert email.transfer_to_user is False and chat.transfer_to_user is True
    assert email.close_requires_tag is True  # inherited from the global rules
    assert s.reasons == ("billing", "bug")


@pytest.mark.parametrize("text, key", [
    ("routing: {mode: push}\n", "routing.mode"),
    ("routing: {offer_timeout: soon}\n", "routing.offer_timeout"),
    ("routing: {offer_timeout: 0s}\n", "routing.offer_timeout"),
    ("routing: {capacity: {chat: -1}}\n", "routing.capacity.chat"),
    ("routing: {capacity: {chat: true}}\n", "routing.capacity.chat"),
    ("routing: {speed: 2}\n", "routing.speed"),
    ("rules: {channels: {email: []}}\n", "rules.channels.email"),
    ("jobs: {route: {every: often}}\n", "jobs.route.every"),
])
def test_bad_routing_values_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as info:
        settings_from(tmp_path, text)
    assert key in str(info.value)
