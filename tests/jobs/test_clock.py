"""Who may move the desk's clock (SPEC §13, issue 14 findings 1 and 8, issue 13 #2):
DESKCTL_NOW and --now only where `clock: {override: true}`, DESKCTL_NOW validated before
any work, `jobs run` identity, future runs refused unless forced and never stopping the
daemon's own schedule."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from deskctl.app import App
from deskctl.jobs import access, daemon, runner
from tests.factories import T0, make_conversation

PAST = "2026-11-20T10:00:00+00:00"


def write_config(desk, text: str) -> str:
    path = desk.tmp_path / "own.yaml"
    path.write_text(text)
    return str(path)


# -- DESKCTL_NOW ------------------------------------------------------------------------

def test_deskctl_now_is_a_configuration_error_where_override_is_off(seeded):
    cid = make_conversation(seeded)
    before = seeded.dump()
    seeded.replay = False  # the default configuration: override off
    seeded.now = "2020-01-01T00:00:00Z"
    for args in (("note", cid, "backdated"), ("reply", cid, "x"), ("list",), ("pending", cid)):
        result = seeded.run(*args, as_="alice")
        assert result.exit_code == 78, (args, result)
        assert "DESKCTL_NOW" in result.stderr and "clock: {override: true}" in result.stderr
        assert "test, demo and replay desks" in result.stderr
        assert result.stdout == ""
    # A configuration file that leaves it off says the same, naming the file.
    config = write_config(seeded, "clock: {override: false}\n")
    result = seeded.run("note", cid, "backdated", as_="alice", env={"DESKCTL_CONFIG": config})
    assert result.exit_code == 78 and config in result.stderr
    assert seeded.dump() == before


def test_deskctl_now_is_honoured_on_a_replay_desk(seeded):
    cid = make_conversation(seeded)
    seeded.now = "2026-11-20T12:34:56+01:00"
    seeded.ok("note", cid, "on time", as_="alice")
    assert str(seeded.scalar("SELECT max(created_at) FROM notes")).startswith("2026-11-20 11:34:56")
    seeded.replay = False
    seeded.now = ""  # empty: unset, the real clock
    seeded.ok("list")


@pytest.mark.parametrize("value", [
    "now", "tomorrow", "23:59:60", "+25:00", "2026-11-20", "2026-11-20T10:00:00",
    "2026-11-20T10:00:00+25:00", "9999-12-31T23:00:00Z", "0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z",
    "3000-01-01T00:00:00Z", "2000-01-01T00:30:00+01:00",
])
def test_a_bad_deskctl_now_is_a_configuration_error_naming_it(seeded, value):
    cid = make_conversation(seeded, status="pending")
    before = seeded.dump()
    seeded.now = value
    for args in (("pending", cid), ("reopen", cid), ("report", "volume", "--since", "7d"),
                 ("list", "--created-after", "1d")):
        result = seeded.run(*args)
        assert result.exit_code == 78, (args, result)
        assert "DESKCTL_NOW" in result.stderr and result.stdout == ""
    mail = b"From: a@example.com\r\nTo: s@desk.example\r\nSubject: hi\r\nMessage-ID: <m1@x>\r\n\r\nbody\r\n"
    ingest = seeded.run("ingest", "email", "-", input=mail)
    # never an internal error (an MTA bounces on 1); 75 once ingest maps every other failure to it
    assert ingest.exit_code in (75, 78) and "DESKCTL_NOW" in ingest.stderr
    assert seeded.dump() == before


def test_deskctl_now_edges_of_the_allowed_range(seeded):
    make_conversation(seeded)
    for value in ("2000-01-01T00:00:00Z", "2999-12-31T23:59:59+00:00", "2026-11-20T10:00:00-05:00"):
        seeded.now = value
        seeded.ok("list")


# -- jobs run: who ----------------------------------------------------------------------

def test_jobs_run_needs_an_admin(seeded):
    make_conversation(seeded)
    before = seeded.dump()
    for handle in ("alice", "carol", "nobody"):
        result = seeded.run("jobs", "run", "sla-sweep", as_=handle)
        assert result.exit_code == 5, (handle, result)
        assert result.stdout == ""
        assert seeded.run("jobs", "run", "sla-sweep", "--now", PAST, as_=handle).exit_code == 5
    assert seeded.dump() == before  # not even a job_runs row
    seeded.ok("jobs", "run", "sla-sweep", as_="root")


def test_jobs_run_without_a_user_as_the_service_account(seeded):
    # No user named, and a login name that is no desk user (the tests may run as root, an admin handle).
    no_user = {"DESKCTL_USER": None, "LOGNAME": "no-such-agent", "USER": "no-such-agent"}
    me = access.os_account()
    config = write_config(seeded, f"service_user: {me}\n")
    seeded.ok("jobs", "run", "sla-sweep", env={**no_user, "DESKCTL_CONFIG": config})
    # Naming a user always means that user, even from the service account.
    assert seeded.run("jobs", "run", "sla-sweep", as_="alice", env={"DESKCTL_CONFIG": config}).exit_code == 5
    # Another service account: $USER / $LOGNAME cannot pretend to be it.
    other = write_config(seeded, "service_user: deskctl-svc\n")
    spoofed = {**no_user, "DESKCTL_CONFIG": other, "USER": "deskctl-svc", "LOGNAME": "deskctl-svc"}
    assert me != "deskctl-svc"
    result = seeded.run("jobs", "run", "sla-sweep", env=spoofed)
    assert result.exit_code == 5, result
    assert seeded.run("jobs", "run", "sla-sweep", env={**no_user, "DESKCTL_CONFIG": other}).exit_code == 5


def test_service_account_default_is_the_sqlite_files_owner(seeded):
    # No user named, and a login name that is no desk user (the tests may run as root).
    env = {"DESKCTL_USER": None, "LOGNAME": "no-such-agent", "USER": "no-such-agent"}
    result = seeded.run("jobs", "run", "sla-sweep", env=env)
    if seeded.engine_name == "sqlite":  # this process owns the database file
        assert result.exit_code == 0, result
    else:  # PostgreSQL has no file to own: service_user must be set (or an admin named)
        assert result.exit_code == 5, result


# -- --now ------------------------------------------------------------------------------

def test_now_option_is_a_permission_error_where_override_is_off(seeded):
    seeded.replay = False
    before = seeded.dump()
    result = seeded.run("jobs", "run", "sla-sweep", "--now", PAST)
    assert result.exit_code == 5 and "--now" in result.stderr and result.stdout == ""
    assert seeded.dump() == before
    seeded.ok("jobs", "run", "sla-sweep")  # without --now: fine


def test_future_now_is_refused_unless_forced(seeded):
    cid = make_conversation(seeded, status="pending", boomerang_at=T0 + timedelta(hours=1))
    seeded.now = (T0 + timedelta(minutes=5)).isoformat()
    future = "2030-01-01T00:00:00Z"
    before = seeded.dump()
    result = seeded.run("jobs", "run", "boomerang", "--now", future)
    assert result.exit_code == 2 and "--force-future" in result.stderr and result.stdout == ""
    assert seeded.dump() == before
    # the desk's own time (or earlier) is fine
    [record] = seeded.json("jobs", "run", "boomerang", "--now", seeded.now)
    assert record["counts"]["returned"] == 0
    [record] = seeded.json("jobs", "run", "boomerang", "--now", future, "--force-future")
    assert record["outcome"] == "ok" and record["scheduled_for"] == "2030-01-01T00:00:00+00:00"
    assert record["counts"]["returned"] == 1
    assert seeded.scalar("SELECT status FROM conversations WHERE id = :c", c=cid) == "new"
    # on the real clock (no DESKCTL_NOW) too
    seeded.now = None
    assert seeded.run("jobs", "run", "boomerang", "--now", "2999-01-01T00:00:00Z").exit_code == 2


# -- a future run never stops the schedule (issue 13 #2) --------------------------------

def test_a_manual_future_run_never_stops_the_daemons_schedule(desk):
    app = App(db_url=desk.url)
    real_now = datetime.now(UTC)
    for name in ("sla-sweep", "boomerang"):
        assert runner.run_job(app, name, now=datetime(2030, 1, 1, tzinfo=UTC)).outcome == "ok"
    due = {name for name, _, _ in runner.due_jobs(app, real_now)}
    assert {"sla-sweep", "boomerang"} <= due
    # What the daemon does every minute: runs them, never "skipped: already run for 2030".
    trigger = runner.trigger_for(runner.schedule_for("sla-sweep", app.settings), app.settings.timezone)
    result = runner.run_job(app, "sla-sweep", now=real_now, scheduled_for=runner.previous_fire_time(trigger, real_now),
                            if_due=trigger)
    assert result.outcome == "ok", result
    ran = {r.job: r.outcome for r in daemon.run_once(app, real_now)}
    assert ran.get("boomerang") == "ok" and "sla-sweep" not in ran  # already run for this minute
    app.close()


def test_a_manual_future_run_counts_once_the_clock_reaches_it(desk):
    app = App(db_url=desk.url)
    at = datetime(2026, 11, 20, 10, 0, 30, tzinfo=UTC)
    runner.run_job(app, "sla-sweep", now=at)
    with app.read() as session:
        assert runner.last_scheduled(session, "sla-sweep", at - timedelta(seconds=1)) is None
        assert runner.last_scheduled(session, "sla-sweep", at) == at
    app.close()


def test_os_account_is_the_effective_uid():
    import pwd

    assert access.os_account() == pwd.getpwuid(os.geteuid()).pw_name


def test_demo_needs_no_override_on_the_real_clock(desk):
    """`deskctl demo` on a fresh desk with no configuration builds around the real clock;
    DESKCTL_NOW there is refused like anywhere else."""
    desk.replay = False
    desk.now = "2026-11-20T10:00:00Z"
    result = desk.run("demo", "--conversations", "5")
    assert result.exit_code == 78 and "DESKCTL_NOW" in result.stderr
    assert desk.scalar("SELECT count(*) FROM conversations") == 0
    desk.now = None
    desk.ok("demo", "--conversations", "5")
    newest = str(desk.scalar("SELECT max(created_at) FROM conversations"))
    assert newest[:4] == str(datetime.now(UTC).year) or newest[:4] == str(datetime.now(UTC).year - 1)
