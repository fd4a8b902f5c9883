"""The notification outbox: enqueue here, deliver in the `notify` job.

Every row has a de-duplication key, so enqueueing the same notification twice (a job
rerun after a crash) stores it once: delivery is at-least-once, duplicates are not.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import CompoundSelect, Select, and_, func, or_, select, update

from deskctl.db.bulk import execute_many
from deskctl.db.dml import dialect_insert
from deskctl.db.idlist import id_in
from deskctl.models import Conversation, Outbox, User, Watcher
from deskctl.services.addresses import is_address

if TYPE_CHECKING:
    import smtplib

# Above this many conversations from one command, a follower gets one summary
# notification instead of one per conversation (a bulk transfer of an absent agent's
# work must not queue thousands of mails to each watcher).
EACH_MAX = 50
_CHUNK = 2000


def enqueue(session, *, kind: str, dedupe_key: str, recipient: str, subject: str, body: str = "",
            now: datetime, conversation_id: int | None = None, user_id: int | None = None,
            raw: bytes | None = None) -> bool:
    """Queue one notification or email; returns False when the key was already queued."""
    if session.scalar(select(Outbox.id).where(Outbox.dedupe_key == dedupe_key)) is not None:
        return False
    session.add(Outbox(kind=kind, dedupe_key=dedupe_key, recipient=recipient, subject=subject, body=body,
                       raw=raw, conversation_id=conversation_id, user_id=user_id, status="queued",
                       attempts=0, next_attempt_at=now, created_at=now))
    session.flush()
    return True


def notify_users(session, user_ids, *, conversation_id: int | None, event: str, subject: str, body: str,
                 now: datetime, key: str) -> int:
    """Queue a notification for each user (to their email, else their handle for the log).

    `key` identifies the occurrence (e.g. the event id); with the user id it forms the
    de-duplication key."""
    count = 0
    ids = sorted(set(u for u in user_ids if u is not None))
    if not ids:
        return 0
    for user in session.scalars(select(User).where(User.id.in_(ids))):
        count += enqueue(session, kind="notification", dedupe_key=f"{event}:{key}:user:{user.id}",
                         recipient=user.email or user.handle, subject=subject, body=body, now=now,
                         conversation_id=conversation_id, user_id=user.id)
    return count


def insert_outbox(session, rows: list[dict]) -> int:
    """Bulk-queue outbox rows; rows whose dedupe_key is already queued are skipped."""
    if not rows:
        return 0
    return execute_many(session.connection(), dialect_insert(session)(Outbox.__table__).on_conflict_do_nothing(), rows)


def notify_followers(session, keys: dict[int, str], *, event: str, now: datetime, subject: str, body: str,
                     summary: str, exclude_user_id: int | None = None, assignee: bool = False) -> int:
    """Tell the watchers of these conversations (and their assignees when `assignee`)
    about `event`, in bulk; returns how many notifications were queued.

    keys: conversation id -> what identifies this occurrence (a version, a message id);
    with the event and user it forms the de-duplication key, so a notification already
    queued for the same occurrence (the direct "transferred to you") is not repeated.
    subject, body: templates of one notification ({id}, {subject}: the conversation's);
    summary: the subject of the one sent instead to a follower of more than EACH_MAX
    ({n}), its body listing the ids.
    The actor (`exclude_user_id`) and inactive users are never notified."""
    notices = FollowerNotices(session, event=event, now=now, subject=subject, body=body, summary=summary,
                              exclude_user_id=exclude_user_id, assignee=assignee)
    ids = sorted(keys)
    for start in range(0, len(ids), _CHUNK):
        notices.add({cid: keys[cid] for cid in ids[start:start + _CHUNK]})
    return notices.flush()


class _Follower:
    """What one follower is told about: how many conversations, the smallest ids (as many
    as a summary lists) with their keys, and their subjects while few enough to be told
    one by one."""

    __slots__ = ("recipient", "count", "keys", "titles")

    def __init__(self, recipient: str):
        self.recipient = recipient
        self.count = 0
        self.keys: dict[int, str] = {}
        self.titles: dict[int, str] | None = {}


class FollowerNotices:
    """`notify_followers` a chunk at a time (a bulk verb's chunks): `add` the conversations
    of each chunk, then `flush` once, which queues what one call with all of them would
    (one summary per follower of more than EACH_MAX). Memory is bounded by the followers,
    not by the conversations."""

    def __init__(self, session, *, event: str, now: datetime, subject: str, body: str, summary: str,
                 exclude_user_id: int | None = None, assignee: bool = False):
        self.session, self.event, self.now = session, event, now
        self.subject, self.body, self.summary = subject, body, summary
        self.exclude_user_id, self.assignee = exclude_user_id, assignee
        self.followers: dict[int, _Follower] = {}

    def add(self, keys: dict[int, str]) -> None:
        """The conversations of one chunk (at most a few thousand: one IN list)."""
        if not keys:
            return
        c = Conversation
        chunk = sorted(keys)
        watchers = (select(Watcher.conversation_id.label("cid"), Watcher.user_id.label("uid"))
                    .where(id_in(Watcher.conversation_id, chunk)))
        watching: Select | CompoundSelect = watchers
        if self.assignee:
            watching = watchers.union(select(c.id, c.assignee_id)
                                      .where(id_in(c.id, chunk), c.assignee_id.is_not(None)))
        followers = watching.subquery()
        touched: set[_Follower] = set()
        for cid, uid, title, handle, email in self.session.connection().execute(
                select(followers.c.cid, followers.c.uid, c.subject, User.handle, User.email)
                .join(c, c.id == followers.c.cid).join(User, User.id == followers.c.uid)
                .where(User.active.is_(True), followers.c.uid != (self.exclude_user_id or 0))
                .order_by(followers.c.uid, followers.c.cid)):
            follower = self.followers.get(uid)
            if follower is None:
                follower = self.followers[uid] = _Follower(email or handle)
            follower.count += 1
            follower.keys[cid] = keys[cid]
            if follower.titles is not None:
                follower.titles[cid] = title
                if follower.count > EACH_MAX:
                    follower.titles = None  # a summary: no subject needed
            touched.add(follower)
        for follower in touched:
            if len(follower.keys) > ID_LIST_MAX:
                # The smallest ids are the ones a summary lists; one more says "...".
                kept = sorted(follower.keys)[:ID_LIST_MAX + 1]
                follower.keys = {cid: follower.keys[cid] for cid in kept}

    def flush(self) -> int:
        rows = []
        event, now = self.event, self.now
        for uid, follower in self.followers.items():
            common = {"kind": "notification", "user_id": uid, "recipient": follower.recipient, "status": "queued",
                      "attempts": 0, "next_attempt_at": now, "created_at": now}
            cids = sorted(follower.keys)
            if follower.titles is None:
                head = self.summary.format(n=follower.count)
                rows.append({**common, "conversation_id": None, "subject": head, "body": f"{head}: {id_list(cids)}",
                             "dedupe_key": f"{event}:bulk:{follower.keys[cids[0]]}:{follower.count}:user:{uid}"})
                continue
            titles = follower.titles
            for cid in cids:
                rows.append({**common, "conversation_id": cid,
                             "subject": self.subject.format(id=cid, subject=titles[cid]),
                             "body": self.body.format(id=cid, subject=titles[cid]),
                             "dedupe_key": f"{event}:{follower.keys[cid]}:user:{uid}"})
        self.followers = {}
        return insert_outbox(self.session, rows)


def notify_contact_messages(session, first_message: dict[int, int], *, now: datetime) -> int:
    """The assignee and watchers of each conversation that got a message from its
    contact (ingest): one notification per conversation and message batch, keyed by
    the first new message's id."""
    return notify_followers(session, {cid: str(mid) for cid, mid in first_message.items()}, event="message_in",
                            now=now, subject="[#{id}] new message from the contact: {subject}",
                            body="Conversation #{id} ({subject}) has a new message from the contact.",
                            summary="{n} of your conversations have new messages from their contacts",
                            assignee=True)


ID_LIST_MAX = 200  # ids a summary lists


def id_list(ids: Sequence[int], limit: int = ID_LIST_MAX) -> str:
    """"#1, #2, ..." for a summary body, cut after `limit` ids."""
    return "#" + ", #".join(str(i) for i in ids[:limit]) + (", ..." if len(ids) > limit else "")


# -- delivery (the `notify` job) ---------------------------------------------------------
#
# Claim, commit, send, mark, commit: a row is sent twice only if the process dies
# between the SMTP "250 OK" and the commit that marks it sent (at-least-once). A row
# left in `sending` by such a crash is claimed again once its lease has expired.

CLAIM_LEASE = timedelta(minutes=10)
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
           timedelta(hours=6), timedelta(hours=12), timedelta(hours=24))
MAX_ATTEMPTS = 8

log = logging.getLogger("deskctl.notify")


class _Transient(Exception):
    """Try again later (4xx, connection refused, timeout, dropped connection)."""


class _Permanent(Exception):
    """Never going to work for this message (5xx)."""


def backoff(attempts: int) -> timedelta:
    """Delay after the `attempts`-th failed try: 1m, 5m, 30m, 2h, 6h, 12h, then daily."""
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


def due(now: datetime):
    """Rows to try now: waiting and due, or claimed by a run that died (lease expired)."""
    return or_(
        and_(Outbox.status.in_(("queued", "retrying")), Outbox.next_attempt_at <= now),
        and_(Outbox.status == "sending", Outbox.claimed_at < now - CLAIM_LEASE),
    )


def claim(session, *, now: datetime, batch: int = 100, where=None) -> list[int]:
    """Mark up to `batch` due rows (also matching `where`) `sending` and COMMIT; returns
    the ids this call won.

    The UPDATE re-checks the due condition, so of two concurrent workers only one
    claims a row (PostgreSQL re-evaluates the WHERE after waiting on the row lock;
    SQLite writers are serialised)."""
    condition = due(now) if where is None else and_(due(now), where)
    ids = list(session.scalars(select(Outbox.id).where(condition)
                               .order_by(Outbox.next_attempt_at, Outbox.id).limit(batch)))
    if not ids:
        return []
    won = list(session.scalars(
        update(Outbox).where(Outbox.id.in_(ids), condition)
        .values(status="sending", claimed_at=now, attempts=Outbox.attempts + 1)
        .returning(Outbox.id).execution_options(synchronize_session=False)))
    session.commit()
    return sorted(won)


class _Smtp:
    """One SMTP connection for a run, opened on first use. If opening fails, every
    remaining row of the run is retried later instead of each waiting for a timeout."""

    def __init__(self, smtp, password: str | None):
        self.smtp = smtp
        self.password = password
        self.conn: smtplib.SMTP | None = None
        self.broken: Exception | None = None

    def _connect(self) -> smtplib.SMTP:
        import smtplib
        import ssl

        conn = smtplib.SMTP(self.smtp.host, self.smtp.port, timeout=self.smtp.timeout)
        try:
            if self.smtp.starttls:
                conn.starttls(context=ssl.create_default_context())
            if self.smtp.username:
                conn.login(self.smtp.username, self.password or "")
        except BaseException:
            conn.close()
            raise
        return conn

    def send(self, msg) -> dict:
        import smtplib

        if self.broken is not None:
            raise _Transient(f"not connected: {self.broken}")
        conn = self.conn
        if conn is None:
            try:
                conn = self.conn = self._connect()
            except (OSError, smtplib.SMTPException) as exc:
                # Whatever the code (even a 5xx greeting or a refused login), it is not
                # this message's fault: keep the rows and retry with backoff.
                self.broken = exc
                raise _Transient(f"cannot connect to {self.smtp.host}:{self.smtp.port}: {_describe(exc)}") \
                    from exc
        try:
            return conn.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            text = "; ".join(f"{rcpt}: {code} {_text(resp)}" for rcpt, (code, resp) in exc.recipients.items())
            raise (_Transient if any(c < 500 for c in codes) else _Permanent)(f"recipients refused: {text}") \
                from exc
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500:
                raise _Permanent(_describe(exc)) from exc
            if exc.smtp_code == 421:  # the server is closing the connection
                self._drop()
            raise _Transient(_describe(exc)) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise _Permanent(str(exc)) from exc
        except (OSError, smtplib.SMTPException) as exc:  # disconnected, timeout, reset
            self._drop()
            raise _Transient(_describe(exc)) from exc

    def _drop(self):
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass

    def close(self):
        if self.conn is not None:
            try:
                self.conn.quit()
            except Exception:  # noqa: BLE001 - closing a connection that is already gone
                pass
            self._drop()


def _text(resp) -> str:
    return resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)


def _describe(exc: Exception) -> str:
    code = getattr(exc, "smtp_code", None)
    if code is not None:
        return f"{code} {_text(getattr(exc, 'smtp_error', ''))}".strip()
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


def _password(settings) -> str | None:
    import os

    from deskctl.errors import ConfigError

    smtp = settings.smtp
    if not smtp.host or not smtp.username:
        return None
    if not smtp.password_env or smtp.password_env not in os.environ:
        raise ConfigError(settings.source, "smtp.password_env",
                          f"smtp.username is set but the environment variable {smtp.password_env!r} "
                          "holding the password is not")
    return os.environ[smtp.password_env]


def _email_for(row: Outbox, settings):
    """The message to transmit: the stored RFC 5322 bytes, else a short plain-text mail
    whose Message-ID derives from the dedupe key (a re-send carries the same id)."""
    import hashlib
    from email import message_from_bytes, policy

    from deskctl.services.outbound.replies import build_email, sender_domain

    if row.raw:
        return message_from_bytes(row.raw, policy=policy.default)
    digest = hashlib.sha256(row.dedupe_key.encode()).hexdigest()[:32]
    return build_email(settings, message_id=f"{digest}@{sender_domain(settings)}", to=row.recipient,
                       subject=row.subject or "deskctl notification", text=row.body or "", now=row.created_at,
                       dedupe_key=row.dedupe_key, automatic=True)


def _log_line(row: Outbox) -> str:
    subject = " ".join((row.subject or "").split())
    return f"outbox {row.id} {row.kind} to {row.recipient}: {subject}"


def deliver(session, *, now: datetime, settings, batch: int = 100) -> dict:
    """Deliver every due outbox row: mail and notifications by SMTP when smtp.host is set
    (notifications to users without an email address go to the log), else the log;
    replies on other channels through their `delivery` connector, each channel in its
    own thread (services.outbound.delivery). Commits as it goes.

    Returns counts, each delivery once: sent (by SMTP or a connector), logged (written
    to the log), retried, failed, recovered (rows reclaimed from a crashed run), deferred
    (channel rows left for the next run: their channel used its time)."""
    from deskctl.errors import ConfigError
    from deskctl.services.outbound.delivery import KIND, ChannelRuns

    counts = {"sent": 0, "logged": 0, "retried": 0, "failed": 0, "recovered": 0, "deferred": 0}
    channels = ChannelRuns(settings, now=now, counts=counts)
    try:
        password = _password(settings)  # before any mail is claimed
    except ConfigError as exc:
        # Mail waits; the other channels need no SMTP password and go on.
        channels.problems.append(exc)
        mail = False
    else:
        mail = True
    counts["recovered"] += session.scalar(
        select(func.count()).select_from(Outbox)
        .where(Outbox.status == "sending", Outbox.claimed_at < now - CLAIM_LEASE)) or 0
    channels.start(session)  # connectors work in their threads while mail goes on here
    transport = _Smtp(settings.smtp, password) if mail and settings.smtp.host else None
    try:
        while mail:
            ids = claim(session, now=now, batch=batch, where=Outbox.kind != KIND)
            if not ids:
                break
            rows = session.scalars(select(Outbox).where(Outbox.id.in_(ids)).order_by(Outbox.id)
                                   .execution_options(populate_existing=True)).all()
            for row in rows:
                _deliver_one(session, row, transport, now=now, settings=settings, counts=counts)
                session.commit()
                channels.step(session)
    finally:
        if transport is not None:
            transport.close()
        channels.finish(session)
    channels.raise_problems()
    return counts


def _deliver_one(session, row: Outbox, transport, *, now: datetime, settings, counts: dict) -> None:
    values: dict = {"claimed_at": None}
    if row.attempts > MAX_ATTEMPTS:
        # Claimed again and again without ever being marked: each try crashed the run.
        values.update(status="failed", last_error=f"gave up after {row.attempts - 1} attempts that never finished")
        counts["failed"] += 1
        log.error("outbox %s to %s failed: %s", row.id, row.recipient, values["last_error"])
    elif (row.kind == "email" or "@" in row.recipient) and not is_address(row.recipient):
        # Stored before addresses were checked (a list, a CR/LF): this row fails, no other.
        values.update(status="failed", last_error=f"invalid recipient address {row.recipient!r}")
        counts["failed"] += 1
        log.error("outbox %s failed: %s", row.id, values["last_error"])
    elif transport is None or (row.kind != "email" and "@" not in row.recipient):
        log.info(_log_line(row))
        values.update(status="sent", sent_at=now, last_error=None)
        counts["logged"] += 1  # delivered to the log: counted once, not also as sent
    else:
        try:
            refused = transport.send(_email_for(row, settings))
        except _Transient as exc:
            if row.attempts >= MAX_ATTEMPTS:
                values.update(status="failed", last_error=f"gave up after {row.attempts} attempts: {exc}")
                counts["failed"] += 1
                log.error("outbox %s to %s failed: %s", row.id, row.recipient, values["last_error"])
            else:
                values.update(status="retrying", next_attempt_at=now + backoff(row.attempts), last_error=str(exc))
                counts["retried"] += 1
                log.warning("outbox %s to %s: retry at %s: %s", row.id, row.recipient,
                            values["next_attempt_at"].isoformat(), exc)
        except _Permanent as exc:
            values.update(status="failed", last_error=str(exc))
            counts["failed"] += 1
            log.error("outbox %s to %s failed: %s", row.id, row.recipient, exc)
        except Exception as exc:  # noqa: BLE001 - a message we cannot even compose or encode
            # Recorded on the row (not swallowed): one bad row must not stop the others.
            values.update(status="failed", last_error=f"cannot send this message: {type(exc).__name__}: {exc}")
            counts["failed"] += 1
            log.exception("outbox %s to %s failed", row.id, row.recipient)
        else:
            partial = "; ".join(f"{rcpt}: {code} {_text(resp)}" for rcpt, (code, resp) in (refused or {}).items())
            values.update(status="sent", sent_at=now, last_error=f"some recipients refused: {partial}"
                          if partial else None)
            counts["sent"] += 1
            log.info(_log_line(row))
    session.execute(update(Outbox).where(Outbox.id == row.id).values(**values)
                    .execution_options(synchronize_session=False))
