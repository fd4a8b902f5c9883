"""Two-way channels (SPEC §11): replies on chat, SMS, social... leave the desk through the
channel's `delivery` connector, by way of the outbox, like email.

A reply on such a channel is queued as an outbox row of kind `message` whose `raw` holds
the JSON body, built once: every retry sends the very same bytes (same `id`, same
signature), so a connector de-duplicates on `id`.

The `notify` job (notifications.deliver) hands the due rows to `ChannelRuns`:

- the main thread claims the rows (commit), then gives each channel its own worker
  thread with its own deadline; the workers only run the command or POST the webhook,
  they never touch the database;
- the main thread, the only writer, records each result as it arrives (commit per row),
  between its own SMTP deliveries;
- a worker stops starting new rows once its channel has used CHANNEL_BUDGET in this run;
  the rows it did not start are released as they were (no attempt counted) and go first
  next run.

So one slow or failing channel costs at most CHANNEL_BUDGET + its timeout, and never
delays another channel: they run side by side (threads rather than a time cap in one
loop, because a cap in one loop still makes the fast channel wait behind the slow one).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, select, update

from deskctl.models import Contact, Conversation, Message, Outbox

log = logging.getLogger("deskctl.notify")

KIND = "message"
# Wall-clock time one channel may spend starting deliveries in one `notify` run (the
# job runs every minute by default); a delivery started before it ends may take its
# timeout more.
CHANNEL_BUDGET = 50.0
# Rows claimed at a time per channel; a worker done with a full batch before its budget
# is used gets the next one.
CHANNEL_BATCH = 100
# Exit status of a command meaning "this message will never go through" (EX_DATAERR).
PERMANENT_EXIT = 65
# How much of a connector's answer (stderr, HTTP body) is kept in last_error.
_DETAIL_CHARS = 300

SENT, RETRY, PERMANENT, DEFERRED = "sent", "retry", "permanent", "deferred"


# -- queueing a reply --------------------------------------------------------------------------
def contact_record(contact: Contact | None, channel: str) -> dict:
    """The `to` object: name, email, phone, handle (the channel's own id of the person)."""
    if contact is None:
        return {"id": None, "name": None, "email": None, "phone": None, "handle": None}
    handle = (contact.attributes or {}).get("handle")
    if isinstance(handle, str) and handle.startswith(f"{channel}:"):
        handle = handle[len(channel) + 1:]  # stored per channel (jsonl contact keys)
    return {"id": contact.id, "name": contact.name or None, "email": contact.email, "phone": contact.phone,
            "handle": handle if isinstance(handle, str) else None}


def recipient_of(to: dict) -> str:
    """What `outbox list` shows in `to`: the handle, else the phone, else the email, else the name."""
    return (to.get("handle") or to.get("phone") or to.get("email") or to.get("name") or "")[:320]


def queue_message(session, *, conversation: Conversation, message: Message, contact: Contact | None,
                  files: Sequence[dict], in_reply_to: str | None, author: str, now: datetime) -> int:
    """Queue the reply `message` for the channel's connector; returns the outbox id.

    files: {name, path, content_type, size} of the stored attachments."""
    to = contact_record(contact, conversation.channel)
    row = Outbox(kind=KIND, channel=conversation.channel, dedupe_key=f"message:{message.id}",
                 conversation_id=conversation.id, recipient=recipient_of(to), subject=conversation.subject or "",
                 body=message.text, status="queued", attempts=0, next_attempt_at=now, created_at=now)
    session.add(row)
    session.flush()
    payload = {
        "id": row.id,
        "conversation_id": conversation.id,
        "channel": conversation.channel,
        "thread": conversation.thread_key,
        "to": to,
        "text": message.text,
        "html": message.html,
        "attachments": [f["path"] for f in files],
        "in_reply_to": in_reply_to,
        # Beyond SPEC §11's list (more may be added, none renamed):
        "files": list(files),
        "message_id": message.id,
        "author": author,
        "at": now.isoformat(),
    }
    row.raw = encode(payload)
    return row.id


def encode(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signature(secret: str, body: bytes) -> str:
    """The X-Deskctl-Signature value: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


# -- one attempt -------------------------------------------------------------------------------
def _tail(data: bytes | None) -> str:
    """The last non-empty line of a connector's output, shortened."""
    lines = [line.strip() for line in (data or b"").decode("utf-8", "replace").splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    return text if len(text) <= _DETAIL_CHARS else text[:_DETAIL_CHARS - 1] + "…"


def _with(prefix: str, detail: str) -> str:
    return f"{prefix}: {detail}" if detail else prefix


def run_command(argv: Sequence[str], body: bytes, timeout: float) -> tuple[str, str | None]:
    """Run the connector with the JSON on stdin: exit 0 sent, 65 permanent, anything else
    (another status, a signal, the timeout) retry. The command runs in its own session so
    that a timeout kills it with everything it started."""
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, close_fds=True)
    except OSError as exc:  # missing or not executable now: perhaps being deployed
        return RETRY, f"cannot run {argv[0]}: {exc.strerror or exc}"
    try:
        _, err = proc.communicate(body, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        return RETRY, f"timed out after {timeout:g}s (killed)"
    code = proc.returncode
    if code == 0:
        return SENT, None
    if code == PERMANENT_EXIT:
        return PERMANENT, _with(f"exit {code} (permanent)", _tail(err))
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return RETRY, f"killed by {name}"
    return RETRY, _with(f"exit {code}", _tail(err))


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    try:
        proc.communicate(timeout=2)
    except subprocess.TimeoutExpired:  # a descendant left the group and holds the pipes
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        proc.wait()


def post_webhook(url: str, body: bytes, secret: str, timeout: float, delivery_id: int | None = None
                 ) -> tuple[str, str | None]:
    """POST the JSON, signed: 2xx sent; 4xx but 408 and 429 permanent; anything else
    (3xx: redirects are not followed, 5xx, 408, 429, no connection, timeout) retry."""
    import http.client
    import urllib.error
    import urllib.request

    from deskctl import __version__

    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": f"deskctl/{__version__}",
               "X-Deskctl-Signature": signature(secret, body)}
    if delivery_id is not None:
        headers["X-Deskctl-Delivery"] = str(delivery_id)
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    opener = _no_redirect_opener()
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(65536)
            status, answer = response.status, b""
    except urllib.error.HTTPError as exc:
        status = exc.code
        try:
            answer = exc.read(_DETAIL_CHARS * 4)
        except (OSError, http.client.HTTPException):
            answer = b""
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return RETRY, f"timed out after {timeout:g}s"
        return RETRY, f"cannot reach {shown_url(url)}: {reason}"
    if 200 <= status < 300:
        return SENT, None
    detail = _with(f"HTTP {status}", _tail(answer))
    if 400 <= status < 500 and status not in (408, 429):
        return PERMANENT, detail + " (permanent)"
    if 300 <= status < 400:
        detail += " (redirects are not followed: fix the webhook URL)"
    return RETRY, detail


def shown_url(url: str) -> str:
    """The URL without credentials or query (a token may hide there), for messages."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc, query="", fragment="").geturl()


def _no_redirect_opener():
    """An opener for which a 3xx is an answer, not a place to resend the body to."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ARG002
            return None

    return urllib.request.build_opener(NoRedirect)


def attempt(config, body: bytes, secret: str | None, delivery_id: int | None = None) -> tuple[str, str | None]:
    """One delivery of `body` through the channel's connector."""
    if config.command is not None:
        return run_command(config.command, body, config.timeout)
    return post_webhook(config.webhook, body, secret or "", config.timeout, delivery_id)


# -- a notify run ------------------------------------------------------------------------------
@dataclass
class _Worker:
    channel: str
    thread: threading.Thread
    deadline: float  # time.monotonic() after which it starts nothing new
    config: Any
    secret: str | None
    full: bool       # its batch was full: more rows may be due


def due_messages(now: datetime):
    from deskctl.services.outbound.notifications import due

    return and_(Outbox.kind == KIND, due(now))


class ChannelRuns:
    """The channel deliveries of one `notify` run (see the module's docstring)."""

    def __init__(self, settings, *, now: datetime, counts: dict):
        self.settings = settings
        self.now = now
        self.counts = counts
        self.results: queue.Queue = queue.Queue()
        self.workers: list[_Worker] = []
        self.pending: dict[int, str] = {}   # claimed row id → channel, until its result is recorded
        self.problems: list = []             # ConfigErrors: raised once everything else is done

    def start(self, session) -> None:
        """Claim each configured channel's due rows and start one worker per channel."""
        from deskctl.errors import ConfigError

        channels = sorted(session.scalars(select(Outbox.channel).where(due_messages(self.now)).distinct()))
        for channel in channels:
            config = self.settings.delivery.get(channel)
            if config is None:
                log.warning("replies on %s wait in the outbox: delivery.%s is not configured", channel, channel)
                continue
            secret = None
            if config.webhook is not None:
                secret = os.environ.get(config.secret_env or "")
                if not secret:
                    self.problems.append(ConfigError(
                        self.settings.source, f"delivery.{channel}.secret_env",
                        f"the environment variable {config.secret_env!r} holding the webhook secret is not set; "
                        f"replies on {channel} wait in the outbox"))
                    continue
            self._launch(session, config, secret, time.monotonic() + CHANNEL_BUDGET)

    def _launch(self, session, config, secret, deadline: float) -> None:
        """Claim a batch of the channel's due rows (commit) and start its worker on them."""
        from deskctl.services.outbound.notifications import MAX_ATTEMPTS, claim

        channel = config.channel
        batch = CHANNEL_BATCH
        ids = claim(session, now=self.now, batch=batch, where=and_(Outbox.kind == KIND, Outbox.channel == channel))
        if not ids:
            return
        rows = session.execute(select(Outbox.id, Outbox.raw, Outbox.attempts).where(Outbox.id.in_(ids))
                               .order_by(Outbox.next_attempt_at, Outbox.id)).all()
        work = []
        for row_id, raw, attempts in rows:
            self.pending[row_id] = channel
            if not raw:  # erased (SPEC §12) before it could leave
                self.results.put((row_id, PERMANENT, "nothing to send: the reply's content was erased"))
            elif attempts > MAX_ATTEMPTS:
                # Claimed again and again without a result: each try took the run down.
                self.results.put((row_id, PERMANENT, f"gave up after {attempts - 1} attempts that never finished"))
            else:
                work.append((row_id, raw))
        thread = threading.Thread(target=self._work, args=(config, secret, work, deadline),
                                  name=f"deskctl-delivery-{channel}", daemon=True)
        self.workers.append(_Worker(channel, thread, deadline, config, secret, full=len(ids) >= batch))
        thread.start()

    def _refill(self, session) -> None:
        """A worker that finished a full batch with time left gets the next batch."""
        for worker in list(self.workers):
            if worker.full and not worker.thread.is_alive() and time.monotonic() < worker.deadline:
                worker.full = False  # once
                self._launch(session, worker.config, worker.secret, worker.deadline)

    def _work(self, config, secret, work, deadline) -> None:
        for row_id, raw in work:
            if time.monotonic() >= deadline:
                self.results.put((row_id, DEFERRED, None))
                continue
            try:
                outcome, detail = attempt(config, raw, secret, row_id)
            except Exception as exc:  # noqa: BLE001 - recorded on the row; the others go on
                log.exception("outbox %s: delivery on %s failed", row_id, config.channel)
                outcome, detail = RETRY, f"{type(exc).__name__}: {exc}"
            self.results.put((row_id, outcome, detail))

    def drain(self, session, *, wait: float = 0.0) -> None:
        """Record the results that have arrived (waiting up to `wait` seconds for one)."""
        while self.pending:
            try:
                row_id, outcome, detail = self.results.get(timeout=wait) if wait else self.results.get_nowait()
            except queue.Empty:
                return
            wait = 0.0
            self._record(session, row_id, outcome, detail)
            session.commit()

    def step(self, session) -> None:
        """Between two mails: record what has arrived, hand out the next batches."""
        self.drain(session)
        self._refill(session)

    def finish(self, session) -> None:
        """Wait for every worker (each bounded by its deadline plus its timeout), recording
        results as they come and handing out further batches while a channel has time. A
        row whose worker is stuck past that stays `sending` and is claimed again once its
        lease expires, like a row of a crashed run."""
        while True:
            self.drain(session)
            self._refill(session)
            alive = [w for w in self.workers if w.thread.is_alive()]
            if not alive or all(time.monotonic() >= w.deadline + w.config.timeout + 5 for w in alive):
                break
            self.drain(session, wait=0.2)
        self.drain(session)
        for row_id, channel in sorted(self.pending.items()):
            log.error("outbox %s on %s: the connector did not finish; the row will be claimed again", row_id,
                      channel)

    def raise_problems(self) -> None:
        if self.problems:
            from deskctl.errors import ConfigError

            raise self.problems[0] if len(self.problems) == 1 else ConfigError.several(self.problems)

    def _record(self, session, row_id: int, outcome: str, detail: str | None) -> None:
        from deskctl.services.outbound.notifications import MAX_ATTEMPTS, backoff

        channel = self.pending.pop(row_id, "?")
        row = Outbox.__table__.c
        values: dict[str, Any]
        if outcome == DEFERRED:
            # Not tried: back as it was, first in line next run.
            values = {"status": case((row.attempts <= 1, "queued"), else_="retrying"),
                      "attempts": row.attempts - 1, "claimed_at": None}
            self.counts["deferred"] = self.counts.get("deferred", 0) + 1
        elif outcome == SENT:
            values = {"status": "sent", "sent_at": self.now, "claimed_at": None, "last_error": None}
            self.counts["sent"] += 1
            log.info("outbox %s delivered on %s", row_id, channel)
        else:
            attempts = session.scalar(select(Outbox.attempts).where(Outbox.id == row_id)) or 1
            if outcome == RETRY and attempts < MAX_ATTEMPTS:
                next_at = self.now + backoff(attempts)
                values = {"status": "retrying", "next_attempt_at": next_at, "last_error": detail, "claimed_at": None}
                self.counts["retried"] += 1
                log.warning("outbox %s on %s: retry at %s: %s", row_id, channel, next_at.isoformat(), detail)
            else:
                if outcome == RETRY:
                    detail = f"gave up after {attempts} attempts: {detail}"
                values = {"status": "failed", "last_error": detail, "claimed_at": None}
                self.counts["failed"] += 1
                log.error("outbox %s on %s failed: %s", row_id, channel, detail)
        session.execute(update(Outbox).where(Outbox.id == row_id).values(**values)
                        .execution_options(synchronize_session=False))
