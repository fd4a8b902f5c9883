"""Threading beyond the direct parent (SPEC §4, §9): replies sharing an ancestor the desk
never received, a contact's later replies to a closed conversation, and messages of a
merged duplicate's thread. Real .eml files and JSON lines through `deskctl ingest`."""

from __future__ import annotations

import json
import mailbox
from email.message import EmailMessage

import pytest
from sqlalchemy import text

from tests.factories import email_message, ingest_mail, make_conversation

NOW = "2026-11-23T12:00:00+00:00"


@pytest.fixture
def tdesk(seeded):
    seeded.now = NOW
    return seeded


def mail(message_id: str, *, sender="Léa Dubois <lea@example.fr>", subject="Re: Facture",
         in_reply_to: str | None = None, references: tuple[str, ...] = (), body="Bonjour,\n") -> EmailMessage:
    return email_message(message_id, sender=sender, subject=subject, date="Mon, 23 Nov 2026 10:00:00 +0000",
                         body=body, in_reply_to=in_reply_to, references=references)


def one(result) -> dict:
    assert result.exit_code == 0, result
    [record] = result.json()
    return record


def ingest_lines(desk, *objects, fmt="json"):
    content = "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects)
    return desk.run("ingest", "jsonl", "-", input=content.encode(), fmt=fmt)


def chat(id_, thread="chat-1", text="hello", **fields) -> dict:
    return {"channel": "chat", "thread": thread, "id": id_, "from": {"name": "Léa", "email": "lea@example.fr"},
            "text": text, **fields}


def set_status(desk, cid, status):
    with desk.engine.begin() as conn:
        conn.execute(text("UPDATE conversations SET status = :s WHERE id = :c"), {"s": status, "c": cid})


def conversation(desk, cid) -> dict:
    [row] = desk.rows("SELECT id, status, linked_to_id, channel, thread_key FROM conversations WHERE id = :c", c=cid)
    return row


# -- bug 11: shared References ancestors ----------------------------------------------------------
def test_two_replies_to_a_parent_the_desk_never_received_share_a_conversation(tdesk, tmp_path):
    # Léa wrote to sales@ (not the desk); Marc and Léa both answer, the desk in copy.
    parent = "original-to-sales@example.fr"
    first = one(ingest_mail(tdesk, tmp_path, mail("r1@example.fr", sender="Marc <marc@example.fr>",
                                                  in_reply_to=parent, references=(parent,))))
    second = ingest_mail(tdesk, tmp_path, mail("r2@example.fr", in_reply_to=parent, references=(parent,)),
                         fmt="tsv")
    assert second.exit_code == 0, second
    header, row = second.stdout.splitlines()
    assert row.split("\t")[:3] == ["r2@example.fr", str(first["id"]), "appended"]
    assert first["action"] == "created"
    assert tdesk.scalar("SELECT count(*) FROM conversations") == 1
    refs = tdesk.rows("SELECT m.external_id, r.ref FROM message_references r JOIN messages m ON m.id = r.message_id "
                      "ORDER BY m.id")
    assert refs == [{"external_id": "r1@example.fr", "ref": parent}, {"external_id": "r2@example.fr", "ref": parent}]


def test_replies_deeper_in_the_thread_join_on_any_shared_ancestor(tdesk, tmp_path):
    root, middle = "root@lists.example", "middle@lists.example"
    first = one(ingest_mail(tdesk, tmp_path, mail("deep-1@example.fr", in_reply_to=middle,
                                                  references=(root, middle))))
    # Another branch of the same thread: only the root in common.
    other = one(ingest_mail(tdesk, tmp_path, mail("deep-2@example.fr", sender="marc@example.fr",
                                                  in_reply_to="elsewhere@lists.example",
                                                  references=(root, "elsewhere@lists.example"))))
    assert (other["id"], other["action"]) == (first["id"], "appended")
    unrelated = one(ingest_mail(tdesk, tmp_path, mail("deep-3@example.fr", in_reply_to="x@nowhere.example")))
    assert unrelated["action"] == "created" and unrelated["id"] != first["id"]


def test_a_reply_that_arrives_before_its_parent_takes_the_parent_in(tdesk, tmp_path):
    child = one(ingest_mail(tdesk, tmp_path, mail("child@example.fr", in_reply_to="parent@example.fr",
                                                  references=("parent@example.fr",))))
    parent = one(ingest_mail(tdesk, tmp_path, mail("parent@example.fr", subject="Facture")))
    assert (parent["id"], parent["action"]) == (child["id"], "appended")


def test_shared_ancestors_thread_within_one_mbox(tdesk, tmp_path):
    parent = "never-seen@example.fr"
    box = mailbox.mbox(tmp_path / "in.mbox")
    for n in (1, 2, 3):
        box.add(mail(f"batch-{n}@example.fr", in_reply_to=parent, references=(parent,)).as_bytes())
    box.close()
    result = tdesk.run("ingest", "email", "--mbox", tmp_path / "in.mbox", fmt="json")
    assert result.exit_code == 0, result
    records = result.json()
    assert [r["action"] for r in records] == ["created", "appended", "appended"]
    assert len({r["id"] for r in records}) == 1


def test_our_reply_s_references_thread_an_answer_that_names_only_them(tdesk, tmp_path):
    # The contact's first mail named a parent the desk never saw; our reply carries it
    # in References; an answer quoting our reply's ancestors only still comes home.
    first = one(ingest_mail(tdesk, tmp_path, mail("q@example.fr", in_reply_to="p@example.fr",
                                                  references=("p@example.fr",))))
    tdesk.ok("reply", first["id"], "Looking into it.", as_="alice")
    ours = tdesk.scalar("SELECT external_id FROM messages WHERE direction = 'outbound'")
    refs = [r["ref"] for r in tdesk.rows(
        "SELECT r.ref FROM message_references r JOIN messages m ON m.id = r.message_id "
        "WHERE m.direction = 'outbound' ORDER BY r.ref")]
    assert refs == ["p@example.fr", "q@example.fr"] and ours not in refs
    answer = one(ingest_mail(tdesk, tmp_path, mail("a@example.fr", references=("p@example.fr",))))
    assert (answer["id"], answer["action"]) == (first["id"], "appended")


# -- bug 4: later replies to a closed conversation join its follow-up --------------------------
def test_a_second_email_reply_to_a_closed_conversation_joins_the_follow_up(tdesk, tmp_path):
    closed = make_conversation(tdesk, status="closed", subject="Facture")  # message m{closed}@example.fr
    parent = f"m{closed}@example.fr"
    first = one(ingest_mail(tdesk, tmp_path, mail("late-1@example.fr", in_reply_to=parent)))
    assert first["action"] == "created" and conversation(tdesk, first["id"])["linked_to_id"] == closed
    # The second reply names only the closed conversation's message, as the first did.
    second = one(ingest_mail(tdesk, tmp_path, mail("late-2@example.fr", in_reply_to=parent, body="Encore.\n")))
    assert (second["id"], second["action"]) == (first["id"], "appended")
    # By the subject tag alone, too.
    third = one(ingest_mail(tdesk, tmp_path, mail("late-3@example.fr", subject=f"Re: [#{closed}] Facture",
                                                  body="Toujours.\n")))
    assert (third["id"], third["action"]) == (first["id"], "appended")
    assert tdesk.scalar("SELECT count(*) FROM conversations") == 2
    assert tdesk.scalar("SELECT count(*) FROM messages WHERE conversation_id = :c", c=first["id"]) == 3


def test_a_reply_after_the_follow_up_closed_too_opens_the_next_one_in_the_chain(tdesk, tmp_path):
    closed = make_conversation(tdesk, status="closed", subject="Facture")
    first = one(ingest_mail(tdesk, tmp_path, mail("c-1@example.fr", in_reply_to=f"m{closed}@example.fr")))
    set_status(tdesk, first["id"], "closed")
    second = one(ingest_mail(tdesk, tmp_path, mail("c-2@example.fr", subject=f"Re: [#{closed}] Facture")))
    assert second["action"] == "created"
    assert conversation(tdesk, second["id"])["linked_to_id"] == first["id"]
    third = one(ingest_mail(tdesk, tmp_path, mail("c-3@example.fr", in_reply_to=f"m{closed}@example.fr")))
    assert (third["id"], third["action"]) == (second["id"], "appended")


def test_two_replies_to_a_closed_conversation_in_one_mbox_open_one_follow_up(tdesk, tmp_path):
    closed = make_conversation(tdesk, status="closed", subject="Facture")
    box = mailbox.mbox(tmp_path / "late.mbox")
    box.add(mail("b-1@example.fr", in_reply_to=f"m{closed}@example.fr").as_bytes())
    box.add(mail("b-2@example.fr", subject=f"Re: [#{closed}] Facture").as_bytes())
    box.close()
    records = tdesk.run("ingest", "email", "--mbox", tmp_path / "late.mbox", fmt="json").json()
    assert [r["action"] for r in records] == ["created", "appended"]
    assert records[0]["id"] == records[1]["id"] != closed


def test_json_lines_and_email_follow_the_same_follow_up(tdesk, tmp_path):
    [created] = ingest_lines(tdesk, chat("j-1")).json()
    set_status(tdesk, created["id"], "closed")
    [follow] = ingest_lines(tdesk, chat("j-2")).json()
    assert follow["action"] == "created" and conversation(tdesk, follow["id"])["linked_to_id"] == created["id"]
    [again] = ingest_lines(tdesk, chat("j-3")).json()
    assert (again["id"], again["action"]) == (follow["id"], "appended")
    # An email tagged with the closed chat conversation lands in the same follow-up.
    tagged = one(ingest_mail(tdesk, tmp_path, mail("j-mail@example.fr", subject=f"Re: [#{created['id']}] chat")))
    assert (tagged["id"], tagged["action"]) == (follow["id"], "appended")


def test_a_cycle_of_links_made_by_hand_ends(tdesk, tmp_path):
    first = make_conversation(tdesk, status="closed", subject="Un")
    second = make_conversation(tdesk, status="closed", subject="Deux", linked_to_id=first, contact_email="m@x.example")
    with tdesk.engine.begin() as conn:
        conn.execute(text("UPDATE conversations SET linked_to_id = :b WHERE id = :a"), {"a": first, "b": second})
    late = one(ingest_mail(tdesk, tmp_path, mail("cycle@example.fr", in_reply_to=f"m{first}@example.fr")))
    assert late["action"] == "created" and conversation(tdesk, late["id"])["linked_to_id"] == second


# -- bug 3: after a merge, the duplicate's thread goes to the survivor ----------------------------
def test_json_lines_of_a_merged_conversation_s_thread_go_to_the_survivor(tdesk):
    [dup] = ingest_lines(tdesk, chat("k-1", thread="chat-3005")).json()
    [keep] = ingest_lines(tdesk, chat("k-2", thread="chat-3003")).json()
    tdesk.ok("merge", dup["id"], "--into", keep["id"], as_="alice")
    result = ingest_lines(tdesk, chat("k-3", thread="chat-3005", text="still me"), fmt="tsv")
    assert result.exit_code == 0, result
    assert result.stdout.splitlines()[1].split("\t")[:3] == ["1", str(keep["id"]), "appended"]
    assert tdesk.scalar("SELECT count(*) FROM conversations") == 2
    assert tdesk.scalar("SELECT conversation_id FROM messages WHERE external_id = 'k-3'") == keep["id"]


def test_email_of_a_merged_conversation_goes_to_the_survivor(tdesk, tmp_path):
    dup = one(ingest_mail(tdesk, tmp_path, mail("dup@example.fr", subject="Commande")))
    keep = make_conversation(tdesk, subject="Commande (chat)")
    tdesk.ok("merge", dup["id"], "--into", keep, as_="alice")
    tagged = one(ingest_mail(tdesk, tmp_path, mail("dup-2@example.fr", subject=f"Re: [#{dup['id']}] Commande")))
    assert (tagged["id"], tagged["action"]) == (keep, "appended")
    threaded = one(ingest_mail(tdesk, tmp_path, mail("dup-3@example.fr", in_reply_to="dup@example.fr")))
    assert (threaded["id"], threaded["action"]) == (keep, "appended")
    assert conversation(tdesk, dup["id"])["status"] == "closed"


def test_an_email_tagged_with_a_merged_duplicate_of_a_closed_survivor_opens_its_follow_up(tdesk, tmp_path):
    dup = one(ingest_mail(tdesk, tmp_path, mail("md@example.fr", subject="Commande")))
    keep = make_conversation(tdesk, subject="Commande", group="support")
    tdesk.ok("merge", dup["id"], "--into", keep, as_="alice")
    set_status(tdesk, keep, "closed")
    late = one(ingest_mail(tdesk, tmp_path, mail("md-2@example.fr", subject=f"Re: [#{dup['id']}] Commande")))
    assert late["action"] == "created" and late["id"] not in (dup["id"], keep)
    [shown] = tdesk.json("show", late["id"])
    assert (shown["linked_to"], shown["subject"], shown["group"]) == (keep, "Re: Commande", "support")


def test_after_the_survivor_closes_a_merged_thread_opens_a_follow_up_of_the_survivor(tdesk):
    [dup] = ingest_lines(tdesk, chat("s-1", thread="chat-a")).json()
    [keep] = ingest_lines(tdesk, chat("s-2", thread="chat-b")).json()
    tdesk.ok("merge", dup["id"], "--into", keep["id"], as_="alice")
    set_status(tdesk, keep["id"], "closed")
    [follow] = ingest_lines(tdesk, chat("s-3", thread="chat-a")).json()
    assert follow["action"] == "created"
    assert conversation(tdesk, follow["id"])["linked_to_id"] == keep["id"]
    # The merged duplicate (linked to the survivor as well) is not taken for its follow-up,
    # and the next line of either thread joins the one follow-up.
    [again] = ingest_lines(tdesk, chat("s-4", thread="chat-b")).json()
    assert (again["id"], again["action"]) == (follow["id"], "appended")
    [more] = ingest_lines(tdesk, chat("s-5", thread="chat-a")).json()
    assert (more["id"], more["action"]) == (follow["id"], "appended")


def test_a_merged_duplicate_reopened_later_keeps_its_own_messages(tdesk):
    [dup] = ingest_lines(tdesk, chat("o-1", thread="chat-x")).json()
    [keep] = ingest_lines(tdesk, chat("o-2", thread="chat-y")).json()
    tdesk.ok("merge", dup["id"], "--into", keep["id"], as_="alice")
    tdesk.ok("reopen", dup["id"], as_="alice")
    [line] = ingest_lines(tdesk, chat("o-3", thread="chat-x")).json()
    assert (line["id"], line["action"]) == (dup["id"], "appended")


# -- migration 0002 on a desk that already has mail --------------------------------------------------
@pytest.fixture
def empty_database(engine_name, tmp_path):
    """A URL of a new, empty database on the engine (not the session's migrated one)."""
    if engine_name == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    import uuid

    import psycopg

    from tests.conftest import _pg_admin_url, _pg_available

    admin = _pg_admin_url()
    if _pg_available(admin):
        pytest.skip("PostgreSQL not reachable")
    plain = admin.replace("postgresql+psycopg://", "postgresql://")
    name = f"deskctl_mig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{admin.rpartition('/')[0]}/{name}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _first_release_conversation(conn) -> None:
    """Conversation #1 as the first release's schema (revision 0001) stores it."""
    conn.execute(text("INSERT INTO conversations (id, subject, channel, status, priority, created_at, "
                      "updated_at, sla_state, sla_paused_s, version) VALUES (1, 's', 'email', 'new', "
                      "'low', '2026-11-20 09:00:00', '2026-11-20 09:00:00', 'none', 0, 1)"))


def test_migration_0002_fills_the_ancestors_of_stored_mail(empty_database):
    from deskctl.db.engine import make_engine
    from deskctl.db.migrate import upgrade

    engine = make_engine(empty_database)
    try:
        upgrade(engine, "0001")
        with engine.begin() as conn:
            _first_release_conversation(conn)
            rows = [(1, "a@x", None, None, "email"), (2, "b@x", "a@x", "<root@x> <a@x>", "email"),
                    (3, "c@x", "b@x", None, "email"), (4, "m-1", None, None, "chat")]
            for mid, external_id, in_reply_to, references, channel in rows:
                conn.execute(text(
                    "INSERT INTO messages (id, conversation_id, direction, channel, text, external_id, in_reply_to, "
                    '"references", cc, bcc, created_at) VALUES (:id, 1, \'inbound\', :ch, \'t\', :e, :irt, :refs, '
                    "'[]', '[]', '2026-11-20 09:00:00')"),
                    {"id": mid, "ch": channel, "e": external_id, "irt": in_reply_to, "refs": references})
        upgrade(engine)
        with engine.connect() as conn:
            refs = [tuple(r) for r in conn.execute(text(
                "SELECT message_id, ref FROM message_references ORDER BY message_id, ref"))]
            kept = conn.execute(text("SELECT count(*) FROM messages WHERE sent_at IS NULL AND body_sha256 IS NULL"))
            assert kept.scalar() == 4
        assert refs == [(2, "a@x"), (2, "root@x"), (3, "b@x")]
    finally:
        engine.dispose()


def test_upgrading_a_desk_with_data_keeps_every_row(empty_database):
    """A SQLite batch migration recreates its table; with foreign keys on, dropping the old
    `conversations` deleted every message, note and event (ON DELETE CASCADE). Each step
    from the first release to the head must keep every row."""
    from deskctl.db.engine import make_engine
    from deskctl.db.migrate import HEAD_REVISION, upgrade

    engine = make_engine(empty_database)
    try:
        upgrade(engine, "0001")
        with engine.begin() as conn:
            _first_release_conversation(conn)
            conn.execute(text("INSERT INTO messages (id, conversation_id, direction, channel, text, cc, bcc, "
                              "created_at) VALUES (1, 1, 'inbound', 'email', 'hello', '[]', '[]', "
                              "'2026-11-20 09:00:00')"))
            conn.execute(text("INSERT INTO notes (id, conversation_id, text, created_at, updated_at) "
                              "VALUES (1, 1, 'a note', '2026-11-20 09:00:00', '2026-11-20 09:00:00')"))
            conn.execute(text("INSERT INTO events (conversation_id, at, actor, kind, data) "
                              "VALUES (1, '2026-11-20 09:00:00', 'system', 'created', '{}')"))
        upgrade(engine)
        with engine.connect() as conn:
            counts = [conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                      for table in ("conversations", "messages", "notes", "events")]
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
        assert counts == [1, 1, 1, 1]
    finally:
        engine.dispose()
