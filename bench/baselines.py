"""The baselines deskctl is compared with: the same work done by hand-written SQL or the
standard library alone, run as a process like deskctl (`python -m bench.baselines OP URL ...`).

They use the same engine set-up as deskctl (deskctl.db.engine.make_engine: same driver,
same SQLite pragmas), so a ratio measures what deskctl adds over the bare query: its
imports, config, permission checks, validation, events, notifications and output.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta


def _engine(url):
    from deskctl.db.engine import make_engine

    return make_engine(url)


def _param(conn, value: datetime):
    """A datetime as the column stores it (naive UTC text on SQLite)."""
    if conn.dialect.name == "sqlite":
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    return value


def _json_object(conn, *pairs: str) -> str:
    fn = "json_object" if conn.dialect.name == "sqlite" else "jsonb_build_object"
    return f"{fn}({', '.join(pairs)})"


def _day(conn, column: str) -> str:
    if conn.dialect.name == "sqlite":
        return f"substr({column}, 1, 10)"
    return f"date_trunc('day', {column})"


def _seconds(conn, later: str, earlier: str) -> str:
    if conn.dialect.name == "sqlite":
        return f"(julianday({later}) - julianday({earlier})) * 86400"
    return f"extract(epoch from ({later} - {earlier}))"


def _now():
    from deskctl.clock import now

    return now()


def transfer(url, where: str, params: dict, to_group: str) -> int:
    """UPDATE conversations ...; INSERT INTO events SELECT ... for the selected rows."""
    from sqlalchemy import text

    with _engine(url).begin() as conn:
        gid = conn.execute(text("SELECT id FROM groups WHERE name = :g"), {"g": to_group}).scalar()
        now = _param(conn, _now())
        data = _json_object(conn, "'from_user'", "u.handle", "'to_user'", "NULL", "'from_group'", "g.name",
                            "'to_group'", "CAST(:to_group AS TEXT)", "'reason'", "NULL", "'note_id'", "NULL")
        conn.execute(text(
            f"INSERT INTO events (conversation_id, at, actor, kind, data) "
            f"SELECT c.id, :now, 'admin', 'transferred', {data} FROM conversations c "
            f"LEFT JOIN users u ON u.id = c.assignee_id LEFT JOIN groups g ON g.id = c.group_id WHERE {where}"),
            {**params, "now": now, "to_group": to_group})
        moved = conn.execute(text(
            f"UPDATE conversations SET assignee_id = NULL, group_id = :gid, status = 'new', updated_at = :now, "
            f"version = version + 1 WHERE id IN (SELECT c.id FROM conversations c WHERE {where})"),
            {**params, "gid": gid, "now": now}).rowcount
    return moved


def transfer_from(url, handle, to_group):
    from sqlalchemy import text

    with _engine(url).connect() as conn:
        uid = conn.execute(text("SELECT id FROM users WHERE handle = :h"), {"h": handle}).scalar()
    return transfer(url, "c.assignee_id = :uid AND c.status <> 'closed'", {"uid": uid}, to_group)


def transfer_group(url, group, to_group):
    from sqlalchemy import text

    with _engine(url).connect() as conn:
        gid = conn.execute(text("SELECT id FROM groups WHERE name = :g"), {"g": group}).scalar()
    return transfer(url, "c.group_id = :src AND c.status <> 'closed'", {"src": gid}, to_group)


def transfer_new(url, group, to_group):
    """The 50,000-row transfer of the set-based issue: every `new` of one group."""
    from sqlalchemy import text

    with _engine(url).connect() as conn:
        gid = conn.execute(text("SELECT id FROM groups WHERE name = :g"), {"g": group}).scalar()
    return transfer(url, "c.group_id = :src AND c.status = 'new'", {"src": gid}, to_group)


def resolve_new(url, group):
    """Resolve every `new` of one group: one audit row each, one UPDATE."""
    from sqlalchemy import text

    with _engine(url).begin() as conn:
        gid = conn.execute(text("SELECT id FROM groups WHERE name = :g"), {"g": group}).scalar()
        now = _param(conn, _now())
        data = _json_object(conn, "'until'", "NULL")
        where = "group_id = :gid AND status = 'new'"
        conn.execute(text(
            f"INSERT INTO events (conversation_id, at, actor, kind, data) "
            f"SELECT id, :now, 'admin', 'resolved', {data} FROM conversations WHERE {where}"),
            {"now": now, "gid": gid})
        return conn.execute(text(
            f"UPDATE conversations SET status = 'resolved', resolved_at = :now, boomerang_at = NULL, "
            f"pending_since = NULL, updated_at = :now, version = version + 1 WHERE {where}"),
            {"now": now, "gid": gid}).rowcount


def route(url, capacity):
    """Routing's assign pass by hand (SPEC §10): in each `route-` group, the waiting
    conversations in urgency order go round-robin to the group's available members, up
    to `capacity` each (the bench's agents start empty, on one channel), with one
    `routed` event each."""
    from sqlalchemy import text

    rank = "CASE priority WHEN 'urgent' THEN 3 WHEN 'high' THEN 2 WHEN 'medium' THEN 1 ELSE 0 END"
    due = "COALESCE(next_response_due, first_response_due, resolution_due)"
    pick = (
        "WITH w AS (SELECT id, group_id, row_number() OVER (PARTITION BY group_id "
        f"  ORDER BY {rank} DESC, {due} IS NULL, {due}, created_at, id) AS rn FROM conversations "
        "  WHERE status = 'new' AND assignee_id IS NULL AND offered_to IS NULL "
        "  AND group_id IN (SELECT id FROM groups WHERE name LIKE 'route-%')), "
        "a AS (SELECT m.group_id, u.id AS user_id, u.handle, row_number() OVER (PARTITION BY m.group_id "
        "  ORDER BY u.id) AS an, count(*) OVER (PARTITION BY m.group_id) AS k FROM group_members m "
        "  JOIN users u ON u.id = m.user_id WHERE u.availability = 'available' AND u.active), "
        "pick AS (SELECT w.id, a.user_id, a.handle FROM w JOIN a ON a.group_id = w.group_id "
        "  AND a.an = ((w.rn - 1) % a.k) + 1 WHERE w.rn <= a.k * :cap) ")
    with _engine(url).begin() as conn:
        now = _param(conn, _now())
        data = _json_object(conn, "'user'", "pick.handle")
        params = {"now": now, "cap": int(capacity)}
        conn.execute(text(pick + "INSERT INTO events (conversation_id, at, actor, kind, data) "
                                 f"SELECT pick.id, :now, 'system', 'routed', {data} FROM pick"), params)
        return conn.execute(text(
            pick + "UPDATE conversations SET assignee_id = pick.user_id, status = 'open', claimed_at = :now, "
                   "updated_at = :now, version = version + 1 FROM pick WHERE conversations.id = pick.id"),
            params).rowcount


def search(url, words):
    """The bare full-text query of `list --query WORDS --limit 50` (every word AND-ed in
    one message): the engine's index alone, first 50 conversation ids."""
    from sqlalchemy import text

    with _engine(url).connect() as conn:
        if conn.dialect.name == "sqlite":
            expr = " ".join(f'"{w}"' for w in words.split())
            sql = ("SELECT DISTINCT m.conversation_id FROM messages m WHERE m.id IN "
                   "(SELECT rowid FROM search_messages WHERE search_messages MATCH :q) "
                   "ORDER BY m.conversation_id LIMIT 50")
            params = {"q": expr}
        else:
            sql = ("SELECT DISTINCT conversation_id FROM messages WHERE to_tsvector('simple'::regconfig, "
                   "regexp_replace(text, '[[:punct:]]+', ' ', 'g')) @@ plainto_tsquery('simple', :q) "
                   "ORDER BY conversation_id LIMIT 50")
            params = {"q": words}
        rows = conn.execute(text(sql), params).all()
    for (cid,) in rows:
        print(cid)
    return len(rows)


def sla_query(url):
    """The sweep's indexed range query: what is due now."""
    from sqlalchemy import text

    with _engine(url).connect() as conn:
        rows = conn.execute(text(
            "SELECT id, first_response_due, next_response_due, resolution_due, sla_state FROM conversations "
            "WHERE sla_next_check_at <= :now"), {"now": _param(conn, _now())}).all()
    return len(rows)


def sla_sweep(url):
    """The sweep of `_make_breach_due`'s conversations by hand: the first-response breach
    mark, its event, a notification to the assignee (else the group's supervisors), and the
    state and next check (the resolution's warning moment, 18 hours before it is due)."""
    from sqlalchemy import text

    with _engine(url).begin() as conn:
        now = _param(conn, _now())
        sqlite = conn.dialect.name == "sqlite"
        late = "c.sla_next_check_at <= :now AND c.first_response_at IS NULL AND c.first_response_due <= :now"
        conflict = "ON CONFLICT DO NOTHING"
        conn.execute(text(
            f"INSERT INTO sla_marks (conversation_id, target, level, at) SELECT id, 'first_response', "
            f"'breached', :now FROM conversations c WHERE {late} {conflict}"), {"now": now})
        data = _json_object(conn, "'target'", "'first_response'", "'due'", "c.first_response_due")
        conn.execute(text(
            f"INSERT INTO events (conversation_id, at, actor, kind, data) SELECT id, :now, 'system', "
            f"'sla_breached', {data} FROM conversations c WHERE {late}"), {"now": now})
        recipients = (
            "SELECT c.id AS cid, c.first_response_due AS due, u.id AS uid, COALESCE(u.email, u.handle) AS addr "
            "FROM conversations c JOIN users u ON u.id = c.assignee_id WHERE " + late
            + " UNION ALL SELECT c.id, c.first_response_due, u.id, COALESCE(u.email, u.handle) FROM conversations c "
            "JOIN group_members m ON m.group_id = c.group_id JOIN users u ON u.id = m.user_id "
            "AND u.role IN ('supervisor', 'admin') AND u.active WHERE c.assignee_id IS NULL AND " + late)
        cast = "" if sqlite else "::text"
        conn.execute(text(
            "INSERT INTO outbox (kind, channel, dedupe_key, conversation_id, user_id, recipient, subject, body, "
            "status, attempts, next_attempt_at, created_at) SELECT 'notification', 'email', "
            f"'sla_breached:' || r.cid{cast} || ':first_response:user:' || r.uid{cast}, r.cid, r.uid, r.addr, "
            f"'[#' || r.cid{cast} || '] SLA breached: first response due ' || r.due{cast}, "
            f"'Conversation #' || r.cid{cast} || ': the first response target is late (due ' || r.due{cast} || ').', "
            f"'queued', 0, :now, :now FROM ({recipients}) r WHERE true {conflict}"), {"now": now})
        resolution_warning = ("datetime(resolution_due, '-64800 seconds')" if sqlite
                              else "resolution_due - interval '18 hours'")
        return conn.execute(text(
            f"UPDATE conversations SET sla_state = 'breached', sla_next_check_at = {resolution_warning} "
            f"WHERE {late.replace('c.', '')}"), {"now": now}).rowcount


def boomerang(url):
    from sqlalchemy import text

    with _engine(url).begin() as conn:
        now = _param(conn, _now())
        data = _json_object(conn, "'previous_status'", "status", "'boomerang_at'", "boomerang_at")
        conn.execute(text(
            f"INSERT INTO events (conversation_id, at, actor, kind, data) "
            f"SELECT id, :now, 'system', 'boomerang_returned', {data} FROM conversations "
            f"WHERE boomerang_at <= :now"), {"now": now})
        return conn.execute(text(
            "UPDATE conversations SET status = 'new', boomerang_at = NULL, updated_at = :now, "
            "version = version + 1 WHERE boomerang_at <= :now"), {"now": now}).rowcount


def report(url, kind):
    """The bare GROUP BY behind each report over the last 30 days."""
    from sqlalchemy import text

    with _engine(url).connect() as conn:
        since = _param(conn, _now() - timedelta(days=30))
        queries = {
            "volume": [
                f"SELECT {_day(conn, 'created_at')}, count(*) FROM conversations WHERE created_at >= :since GROUP BY 1",
                f"SELECT {_day(conn, 'resolved_at')}, count(*) FROM conversations WHERE resolved_at >= :since "
                "GROUP BY 1",
                f"SELECT {_day(conn, 'closed_at')}, count(*) FROM conversations WHERE closed_at >= :since GROUP BY 1",
                f"SELECT {_day(conn, 'at')}, count(*) FROM events WHERE kind = 'reopened' AND at >= :since "
                "GROUP BY 1",
            ],
            "sla": [
                f"SELECT {_day(conn, 'created_at')}, count(*), "
                "sum(CASE WHEN first_response_at <= first_response_due THEN 1 ELSE 0 END), "
                "sum(CASE WHEN first_response_at > first_response_due THEN 1 ELSE 0 END), "
                "sum(CASE WHEN resolved_at <= resolution_due THEN 1 ELSE 0 END), "
                f"avg({_seconds(conn, 'first_response_at', 'first_inbound_at')}) "
                "FROM conversations WHERE created_at >= :since GROUP BY 1",
            ],
            "agents": [
                "SELECT actor, kind, count(*) FROM events WHERE at >= :since AND kind IN "
                "('claimed', 'transferred', 'message_out', 'resolved', 'closed') GROUP BY actor, kind",
            ],
            "tags": [
                f"SELECT t.tag, count(*), avg({_seconds(conn, 'c.resolved_at', 'c.created_at')}) "
                "FROM conversation_tags t JOIN conversations c ON c.id = t.conversation_id "
                "WHERE c.resolved_at >= :since GROUP BY t.tag",
            ],
            "csat": [
                f"SELECT {_day(conn, 'closed_at')}, count(csat), avg(csat), "
                "sum(CASE WHEN csat >= 4 THEN 1 ELSE 0 END) FROM conversations "
                "WHERE closed_at >= :since AND csat IS NOT NULL GROUP BY 1",
            ],
            "backlog": [
                "SELECT group_id, status, count(*) FROM conversations WHERE status <> 'closed' "
                "GROUP BY group_id, status",
            ],
            "conversations": [
                "SELECT c.id, c.subject, c.channel, g.name, u.handle, c.status, c.priority, c.reason, c.created_at, "
                f"{_seconds(conn, 'c.first_response_at', 'c.first_inbound_at')}, "
                f"{_seconds(conn, 'c.resolved_at', 'c.created_at')}, c.csat, c.sla_state "
                "FROM conversations c LEFT JOIN groups g ON g.id = c.group_id "
                "LEFT JOIN users u ON u.id = c.assignee_id WHERE c.resolved_at >= :since",
            ],
        }
        rows = 0
        for sql in queries[kind]:
            rows += len(conn.execute(text(sql), {"since": since}).all())
    return rows


def list_jsonl(url):
    """Every conversation with its joined names, streamed as JSON lines to stdout."""
    from sqlalchemy import text

    out = sys.stdout
    count = 0
    with _engine(url).connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=2000).execute(text(
            "SELECT c.id, c.subject, c.status, c.channel, c.priority, u.handle, g.name, l.name, "
            "ct.id, ct.name, ct.email, ct.vip, c.created_at, c.updated_at, c.boomerang_at, c.sla_state "
            "FROM conversations c LEFT JOIN users u ON u.id = c.assignee_id "
            "LEFT JOIN groups g ON g.id = c.group_id LEFT JOIN locations l ON l.id = c.location_id "
            "LEFT JOIN contacts ct ON ct.id = c.contact_id ORDER BY c.id"))
        for row in result:
            out.write(json.dumps({
                "id": row[0], "subject": row[1], "status": row[2], "channel": row[3], "priority": row[4],
                "assignee": row[5], "group": row[6], "location": row[7],
                "contact": {"id": row[8], "name": row[9], "email": row[10], "vip": bool(row[11])},
                "created_at": str(row[12]), "updated_at": str(row[13]),
                "boomerang_at": str(row[14]) if row[14] else None, "sla": {"state": row[15]},
            }, ensure_ascii=False) + "\n")
            count += 1
    return count


def parse_mbox(path):
    """Stdlib parsing alone: every message of the mbox, headers and text body."""
    import mailbox
    from email import policy
    from email.parser import BytesParser

    parser = BytesParser(policy=policy.default)
    count = 0
    box = mailbox.mbox(path, create=False)
    for key in box.iterkeys():
        msg = parser.parsebytes(box.get_bytes(key))
        body = msg.get_body(("plain", "html"))
        _ = (msg["Message-ID"], msg["In-Reply-To"], msg["From"], msg["Subject"],
             body.get_content() if body is not None else "")
        count += 1
    return count


def parse_maildir(path):
    """Stdlib alone over a Maildir's new/: read, parse (headers and text body) and move
    each file to cur/ with the seen flag, as mail-poll does, without storing anything."""
    import os
    from email import policy
    from email.parser import BytesParser

    parser = BytesParser(policy=policy.default)
    count = 0
    new = os.path.join(path, "new")
    for name in sorted(os.listdir(new)):
        with open(os.path.join(new, name), "rb") as fh:
            msg = parser.parsebytes(fh.read())
        body = msg.get_body(("plain", "html"))
        _ = (msg["Message-ID"], msg["In-Reply-To"], msg["From"], msg["Subject"],
             body.get_content() if body is not None else "")
        os.rename(os.path.join(new, name), os.path.join(path, "cur", name + ":2,S"))
        count += 1
    return count


def parse_jsonl(path):
    count = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                json.loads(line)
                count += 1
    return count


OPS = {
    "transfer-from": transfer_from, "transfer-group": transfer_group, "transfer-new": transfer_new,
    "resolve-new": resolve_new, "search": search, "sla-query": sla_query, "route": route,
    "boomerang": boomerang, "sla-sweep": sla_sweep, "report": report, "list-jsonl": list_jsonl, "parse-mbox": parse_mbox,
    "parse-maildir": parse_maildir, "parse-jsonl": parse_jsonl,
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    op, args = argv[0], argv[1:]
    count = OPS[op](*args)
    print(f"baseline {op}: {count} rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
