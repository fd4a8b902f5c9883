"""The database and the configuration at start: migrations, unreachable server, bad config, `db check`; both engines."""


from tests.factories import make_conversation


def test_migrations_from_empty_are_idempotent(desk):
    from deskctl.db.migrate import HEAD_REVISION, head_revision

    assert desk.scalar("SELECT version_num FROM alembic_version") == head_revision() == HEAD_REVISION
    result = desk.ok("db", "upgrade")
    assert "already at revision" in result.stderr


def test_unreachable_postgres_is_exit_75(desk):
    result = desk.run("list", env={"DESKCTL_DATABASE_URL": "postgresql://u:secret@127.0.0.1:1/x"})
    assert result.exit_code == 75
    assert "secret" not in result.stderr and "safe to retry" in result.stderr


def test_bad_config_is_exit_78(desk, tmp_path):
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("rules: {transfer_to_user: perhaps}\n")
    result = desk.run("list", env={"DESKCTL_CONFIG": str(cfg)})
    assert result.exit_code == 78
    assert "broken.yaml" in result.stderr and "rules.transfer_to_user" in result.stderr


def test_db_check_clean_then_reports_a_broken_invariant(seeded):
    cid = make_conversation(seeded, assignee="alice", status="open")
    rows = {r["check"]: r for r in seeded.json("db", "check")}
    assert all(r["problems"] == 0 for r in rows.values())
    with seeded.session() as s:
        from deskctl.models import Conversation

        s.get(Conversation, cid).assignee_id = None  # open but unassigned: impossible via deskctl
    result = seeded.run("db", "check", fmt="json")
    assert result.exit_code == 4
    broken = {r["check"]: r for r in result.json()}["open_without_assignee"]
    assert broken["problems"] == 1 and broken["sample"] == [cid]
