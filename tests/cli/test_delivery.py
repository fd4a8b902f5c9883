"""Two-way channels (SPEC §11): replies on chat/SMS/... leave through the channel's
`delivery` connector, by the outbox and the `notify` job. Real things only: an
executable script written here (it records its stdin and exits as told), an HTTP server
on loopback checking the signature, real timeouts and kills."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.factories import email_message, ingest_mail

T0 = datetime.fromisoformat("2026-11-20T10:00:00+00:00")
SECRET = "s3cret-for-tests"


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


class Connector:
    """An executable shell script: appends its stdin (one JSON object) to a log, sleeps
    if told, says something on stderr and exits with the code in a file."""

    def __init__(self, root: Path, name: str, code: int = 0, sleep: float = 0):
        self.dir = root / f"connector-{name}"
        self.dir.mkdir()
        self.log = self.dir / "stdin.log"
        self.path = self.dir / "send"
        self.path.write_text(
            "#!/bin/sh\n"
            f'd="{self.dir}"\n'
            'cat >> "$d/stdin.log"\n'
            'printf "\\n" >> "$d/stdin.log"\n'
            'if [ -s "$d/sleep" ]; then sleep "$(cat "$d/sleep")" & echo $! > "$d/sleep.pid"; wait; fi\n'
            'echo "gateway says no (try $(wc -l < "$d/stdin.log"))" >&2\n'
            'exit "$(cat "$d/code")"\n')
        self.path.chmod(0o755)
        self.set(code=code, sleep=sleep)

    def set(self, *, code: int | None = None, sleep: float | None = None) -> None:
        if code is not None:
            (self.dir / "code").write_text(str(code))
        if sleep is not None:
            (self.dir / "sleep").write_text(str(sleep) if sleep else "")

    def received(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def raw_lines(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line.strip()]


class Hook:
    """A real HTTP server on 127.0.0.1: records each POST, answers with the next code."""

    def __init__(self):
        self.requests: list[dict] = []
        self.codes: list[int] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                code = hook.codes.pop(0) if hook.codes else 200
                answer = b'{"ok": true}' if code < 300 else b"rejected: bad number\n"
                self.send_response(code)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server = Hook()
    yield server
    server.close()


def configure(desk, tmp_path, delivery: dict, extra: str = "") -> None:
    """A replay desk with this `delivery:` section (JSON is YAML)."""
    path = tmp_path / "delivery.yaml"
    path.write_text("clock: {override: true}\n" + extra + "delivery: " + json.dumps(delivery) + "\n")
    desk.config = path


def run(desk, *args, **kwargs):
    env = {"DESKCTL_CONFIG": str(desk.config), "DESKCTL_SMS_SECRET": SECRET, **kwargs.pop("env", {})}
    return desk.run(*args, env=env, **kwargs)


def ok(desk, *args, **kwargs):
    result = run(desk, *args, **kwargs)
    assert result.exit_code == 0, result
    return result


def chat_conversation(desk, channel="chat", thread="chat-8812", sender=None) -> int:
    sender = sender or {"name": "Léa Dubois", "email": "lea@example.fr", "phone": "+33600000001",
                        "handle": "lea42"}
    line = {"channel": channel, "thread": thread, "id": f"{thread}-m1", "at": at(0), "from": sender,
            "text": "Bonjour, ma commande ?"}
    result = run(desk, "ingest", "jsonl", "-", input=json.dumps(line) + "\n", fmt="json")
    assert result.exit_code == 0, result
    return result.json()[0]["id"]


def notify(desk, minutes: float):
    desk.now = at(minutes)
    result = run(desk, "jobs", "run", "notify", "--now", at(minutes), fmt="json")
    return result


def outbox(desk, *args, as_="carol"):
    return ok(desk, "outbox", "list", *args, fmt="json", as_=as_).json()


@pytest.fixture
def chat(seeded, tmp_path):
    seeded.now = at(5)
    connector = Connector(tmp_path, "chat", code=1)
    configure(seeded, tmp_path, {"chat": {"command": [str(connector.path), "--account", "acme"], "timeout": "5s"}})
    seeded.connector = connector
    return seeded


def test_command_gets_one_json_object_and_retries_with_backoff_until_delivered(chat, tmp_path):
    desk, connector = chat, chat.connector
    cid = chat_conversation(desk)
    attachment = tmp_path / "facture.pdf"
    attachment.write_bytes(b"%PDF-1.4 facture")
    desk.now = at(10)
    [record] = ok(desk, "reply", cid, "Votre colis part demain.", "--attach", attachment, fmt="json").json()
    assert record["queued"] is True and record["channel"] == "chat" and record["to"] == "+33600000001"
    [row] = outbox(desk)
    assert row == {**row, "id": record["outbox_id"], "conversation_id": cid, "channel": "chat",
                   "to": "+33600000001",
                   "status": "queued", "attempts": 0, "last_error": None, "sent_at": None, "kind": "message"}
    assert connector.received() == []  # nothing leaves before the job runs

    # 10:10 exit 1 → retrying, next try after 1m; 10:10:30 not due; 10:11 exit 1 → 5m; 10:16 exit 0 → sent.
    assert notify(desk, 10).exit_code == 0
    [row] = outbox(desk)
    assert (row["status"], row["attempts"]) == ("retrying", 1)
    assert row["next_attempt_at"] == at(11)
    assert row["last_error"] == "exit 1: gateway says no (try 1)"
    notify(desk, 10.5)
    assert len(connector.received()) == 1
    notify(desk, 11)
    [row] = outbox(desk)
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("retrying", 2, at(16))
    connector.set(code=0)
    notify(desk, 15.9)
    assert len(connector.received()) == 2
    [run_record] = notify(desk, 16).json()
    assert run_record["outcome"] == "ok" and run_record["counts"]["sent"] == 1
    [row] = outbox(desk)
    assert (row["status"], row["attempts"], row["sent_at"], row["next_attempt_at"]) == ("sent", 3, at(16), None)
    notify(desk, 30)
    assert len(connector.received()) == 3  # sent once: never again

    # The contract: one JSON object; every retry the very same bytes.
    lines = connector.raw_lines()
    assert lines[0] == lines[1] == lines[2]
    payload = connector.received()[0]
    assert payload["id"] == record["outbox_id"] and payload["conversation_id"] == cid
    assert payload["channel"] == "chat" and payload["thread"] == "chat-8812"
    # The contact is known by email here: its chat handle is not kept, the thread says where.
    assert payload["to"] == {**payload["to"], "name": "Léa Dubois", "email": "lea@example.fr",
                             "phone": "+33600000001", "handle": None}
    assert payload["text"] == "Votre colis part demain." and payload["html"] is None
    assert payload["in_reply_to"] == "chat-8812-m1"
    [path] = payload["attachments"]
    assert Path(path).read_bytes() == b"%PDF-1.4 facture"
    assert payload["files"][0]["name"] == "facture.pdf"
    # The reply counts as the first response and is in the thread.
    shown = ok(desk, "show", cid, fmt="json").json()[0]
    assert [m["kind"] for m in shown["messages"]] == ["inbound", "outbound"]


def test_exit_65_is_a_permanent_failure_and_retry_starts_over(chat):
    desk, connector = chat, chat.connector
    cid = chat_conversation(desk)
    connector.set(code=65)
    ok(desk, "reply", cid, "Bonjour")
    notify(desk, 6)
    [row] = outbox(desk, "--status", "failed")
    assert (row["attempts"], row["last_error"]) == (1, "exit 65 (permanent): gateway says no (try 1)")
    assert row["next_attempt_at"] is None
    notify(desk, 60)
    assert len(connector.received()) == 1  # failed rows are not tried again by themselves

    assert run(desk, "outbox", "retry", row["id"], as_="alice").exit_code == 5
    desk.now = at(61)
    [again] = ok(desk, "outbox", "retry", "--failed", as_="carol", fmt="json").json()
    assert (again["status"], again["attempts"], again["next_attempt_at"]) == ("queued", 0, at(61))
    connector.set(code=0)
    notify(desk, 61)
    assert outbox(desk)[0]["status"] == "sent" and len(connector.received()) == 2


def test_a_killed_or_missing_connector_is_retried(chat):
    desk, connector = chat, chat.connector
    cid = chat_conversation(desk)
    ok(desk, "reply", cid, "un")
    connector.path.write_text("#!/bin/sh\nkill -9 $$\n")
    notify(desk, 6)
    [row] = outbox(desk)
    assert (row["status"], row["last_error"]) == ("retrying", "killed by SIGKILL")
    # Executable, but its interpreter is gone (a half-done deployment): exec fails, retried.
    connector.path.write_text("#!/nonexistent/interpreter\n")
    notify(desk, 7)
    [row] = outbox(desk)
    assert row["status"] == "retrying" and row["attempts"] == 2
    assert row["last_error"].startswith(f"cannot run {connector.path}: No such file")


def test_webhook_posts_the_same_json_signed_and_classifies_answers(seeded, tmp_path, hook):
    seeded.now = at(5)
    configure(seeded, tmp_path, {"sms": {"webhook": hook.url, "secret_env": "DESKCTL_SMS_SECRET",
                                         "timeout": "5s"}})
    cid = chat_conversation(seeded, channel="sms", thread="+33600000001")
    ok(seeded, "reply", cid, "Votre code: 4321")
    hook.codes = [503, 429, 200]
    notify(seeded, 6)
    assert outbox(seeded)[0]["status"] == "retrying" and outbox(seeded)[0]["last_error"].startswith("HTTP 503")
    notify(seeded, 7)
    [row] = outbox(seeded)
    assert (row["status"], row["attempts"]) == ("retrying", 2) and row["last_error"].startswith("HTTP 429")
    notify(seeded, 12)
    assert outbox(seeded)[0]["status"] == "sent"
    assert len(hook.requests) == 3
    for request in hook.requests:
        body = request["body"]
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert request["headers"]["X-Deskctl-Signature"] == expected
        assert request["headers"]["Content-Type"].startswith("application/json")
        assert body == hook.requests[0]["body"]
    payload = json.loads(hook.requests[0]["body"])
    assert payload["channel"] == "sms" and payload["text"] == "Votre code: 4321"
    assert payload["to"]["phone"] == "+33600000001" and payload["in_reply_to"] == "+33600000001-m1"

    # 4xx (not 408/429): permanent at once.
    ok(seeded, "reply", cid, "Encore")
    hook.codes = [400]
    notify(seeded, 13)
    row = outbox(seeded)[0]
    assert row["status"] == "failed" and row["last_error"] == "HTTP 400: rejected: bad number (permanent)"


def test_webhook_without_its_secret_fails_the_run_but_other_channels_go(seeded, tmp_path, hook):
    seeded.now = at(5)
    connector = Connector(tmp_path, "chat", code=0)
    configure(seeded, tmp_path, {"sms": {"webhook": hook.url, "secret_env": "DESKCTL_SMS_SECRET"},
                                 "chat": {"command": [str(connector.path)]}})
    sms = chat_conversation(seeded, channel="sms", thread="+33600000001")
    chat_id = chat_conversation(seeded, channel="chat", thread="c-1")
    ok(seeded, "reply", sms, "sms")
    ok(seeded, "reply", chat_id, "chat")
    seeded.now = at(6)
    result = run(seeded, "jobs", "run", "notify", env={"DESKCTL_SMS_SECRET": ""})
    assert result.exit_code == 78 and "delivery.sms.secret_env" in result.stderr
    rows = {r["channel"]: r for r in outbox(seeded)}
    assert rows["chat"]["status"] == "sent" and rows["sms"]["status"] == "queued"
    assert hook.requests == []


def test_a_slow_channel_does_not_hold_up_another(seeded, tmp_path, hook):
    """chat's connector sleeps far past its 1s timeout: it is killed (with the process it
    started) and retried later, while sms is delivered in the same run."""
    seeded.now = at(5)
    slow = Connector(tmp_path, "slow", code=0, sleep=60)
    configure(seeded, tmp_path, {"chat": {"command": [str(slow.path)], "timeout": "1s"},
                                 "sms": {"webhook": hook.url, "secret_env": "DESKCTL_SMS_SECRET"}})
    chat_id = chat_conversation(seeded)
    sms = chat_conversation(seeded, channel="sms", thread="+33600000001")
    ok(seeded, "reply", chat_id, "lent")
    ok(seeded, "reply", sms, "rapide")
    started = time.monotonic()
    [run_record] = notify(seeded, 6).json()
    elapsed = time.monotonic() - started
    assert run_record["outcome"] == "ok"
    rows = {r["channel"]: r for r in outbox(seeded)}
    assert rows["sms"]["status"] == "sent" and len(hook.requests) == 1
    assert rows["chat"]["status"] == "retrying" and rows["chat"]["last_error"] == "timed out after 1s (killed)"
    assert elapsed < 20, elapsed
    sleeper = int((slow.dir / "sleep.pid").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(sleeper):
        time.sleep(0.05)
    assert not _alive(sleeper), "the connector's child survived the timeout"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) is gone for our purpose.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_channel_stops_starting_deliveries_when_its_time_is_up(chat, monkeypatch):
    """The per-channel budget: rows not started in time stay queued, attempts untouched."""
    from deskctl.services.outbound import delivery

    desk, connector = chat, chat.connector
    connector.set(code=0, sleep=1)
    monkeypatch.setattr(delivery, "CHANNEL_BUDGET", 1.5)
    ids = [chat_conversation(desk, thread=f"t-{n}") for n in range(3)]
    for cid in ids:
        ok(desk, "reply", cid, f"pour {cid}")
    [run_record] = notify(desk, 6).json()
    rows = outbox(desk)
    sent = [r for r in rows if r["status"] == "sent"]
    waiting = [r for r in rows if r["status"] == "queued"]
    assert sent and waiting and len(sent) + len(waiting) == 3
    assert all(r["attempts"] == 0 for r in waiting)
    assert run_record["counts"]["deferred"] == len(waiting)
    connector.set(sleep=0)
    notify(desk, 7)
    assert {r["status"] for r in outbox(desk)} == {"sent"}


def test_channel_without_delivery_stores_the_reply_and_says_so(chat):
    desk = chat
    cid = chat_conversation(desk, channel="web", thread="form-1")
    ok(desk, "show", cid)  # read first: no "you have not read" warning
    result = run(desk, "reply", cid, "Merci pour votre message", fmt="json")
    assert result.exit_code == 0
    assert result.json()[0]["queued"] is False
    assert result.stderr.strip().splitlines() == [
        f"#{cid}: no delivery is configured for web: the reply is stored in the conversation only, not sent "
        "(set delivery.web in the configuration, or answer with --via email)"]
    assert desk.scalar("SELECT count(*) FROM outbox") == 0
    assert desk.scalar("SELECT count(*) FROM messages WHERE direction = 'outbound'") == 1


def test_reply_via_email_threads_the_answer_back_into_the_same_conversation(chat, tmp_path):
    desk = chat
    cid = chat_conversation(desk)
    desk.now = at(20)
    [record] = ok(desk, "reply", cid, "Je vous écris par email.", "--via", "email", fmt="json").json()
    assert record["channel"] == "email" and record["to"] == "lea@example.fr" and record["queued"] is True
    [row] = outbox(desk)
    assert (row["kind"], row["channel"], row["to"]) == ("email", "email", "lea@example.fr")
    assert row["subject"].startswith(f"[#{cid}] ")
    assert desk.connector.received() == []  # not through the chat connector
    [message] = desk.rows("SELECT channel, external_id FROM messages WHERE direction = 'outbound'")
    assert message == {"channel": "email", "external_id": record["external_id"]}

    answer = email_message("answer-1@example.fr", sender="Léa Dubois <lea@example.fr>", subject="Re: ta réponse",
                           date="Fri, 20 Nov 2026 11:00:00 +0000", body="Merci, bien reçu.",
                           in_reply_to=record["external_id"])
    desk.now = at(60)
    result = ingest_mail(desk, tmp_path, answer, "--config", str(desk.config))
    assert result.exit_code == 0, result
    [ingested] = result.json()
    assert (ingested["id"], ingested["action"]) == (cid, "appended")
    assert desk.scalar("SELECT count(*) FROM conversations") == 1


def test_reply_via_email_needs_the_contacts_address(chat):
    desk = chat
    cid = chat_conversation(desk, thread="anon", sender={"name": "Anon", "handle": "anon7"})
    before = desk.dump()
    result = run(desk, "reply", cid, "hello", "--via", "email")
    assert result.exit_code == 3 and "has no email address" in result.stderr
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert desk.dump() == before
    assert run(desk, "reply", cid, "hello", "--via", "fax").exit_code == 2


def test_delivery_configuration_problems_are_all_reported_at_load(seeded, tmp_path):
    configure(seeded, tmp_path, {
        "email": {"command": ["/bin/true"]},
        "pager": {"command": ["/bin/true"]},
        "chat": {"command": "/bin/true --flag"},
        "sms": {"webhook": "ftp://sms.example.net/send", "secret_env": "DESKCTL_SMS_SECRET"},
        "social": {"command": ["/bin/true"], "webhook": "https://x.example/", "secret_env": "X"},
        "web": {"command": [str(tmp_path / "missing-program")], "timeout": "10m"},
        "phone": {"webhook": "https://pbx.example/hook", "tiemout": "5s"},
        "sms_backup": {"webhook": "https://user:pw@sms.example/", "secret_env": "S"},
    }, extra="channels: [email, chat, sms, social, web, phone, sms_backup]\n")
    result = run(seeded, "config", "check")
    assert result.exit_code == 78
    for key in ("delivery.email", "delivery.pager", "delivery.chat.command", "delivery.sms.webhook",
                "delivery.social", "delivery.social.secret_env", "delivery.web.command", "delivery.web.timeout",
                "delivery.phone.tiemout", "delivery.phone.secret_env", "delivery.sms_backup.webhook"):
        assert f": {key}:" in result.stderr, key
    assert result.stdout == ""
    # Every other command refuses to start as well, with the same problems.
    assert run(seeded, "list").exit_code == 78


def test_a_good_delivery_configuration_loads(seeded, tmp_path, hook):
    connector = Connector(tmp_path, "chat")
    configure(seeded, tmp_path, {"chat": {"command": [str(connector.path)]},
                                 "sms": {"webhook": hook.url, "secret_env": "DESKCTL_SMS_SECRET", "timeout": 3}})
    assert run(seeded, "config", "check").exit_code == 0
    shown = ok(seeded, "config", "show").stdout
    assert "secret_env: DESKCTL_SMS_SECRET" in shown and SECRET not in shown


def test_a_reply_erased_before_it_left_is_never_sent(chat):
    """contact forget (SPEC §12) erases the queued JSON too: the row fails, nothing is sent."""
    desk, connector = chat, chat.connector
    cid = chat_conversation(desk)
    ok(desk, "reply", cid, "Votre adresse: 1 rue de la Paix")
    ok(desk, "contact", "forget", "lea@example.fr", "--yes")
    [row] = outbox(desk)
    assert row["to"] == "[erased]"
    notify(desk, 6)
    [row] = outbox(desk)
    assert (row["status"], row["last_error"]) == ("failed", "nothing to send: the reply's content was erased")
    assert connector.received() == []


def test_a_row_whose_runs_never_finish_is_given_up_and_a_crashed_claim_is_taken_again(chat):
    """A run that died after claiming (lease expired) leaves the row to the next run; one
    claimed more than 8 times without a result fails instead of taking runs down forever."""
    from sqlalchemy import update

    from deskctl.models import Outbox

    desk, connector = chat, chat.connector
    connector.set(code=0)
    first, second = (chat_conversation(desk, thread=t) for t in ("t-1", "t-2"))
    ok(desk, "reply", first, "un")
    ok(desk, "reply", second, "deux")
    claimed = T0 + timedelta(minutes=5)
    with desk.session() as session:
        session.execute(update(Outbox).where(Outbox.conversation_id == first)
                        .values(status="sending", attempts=1, claimed_at=claimed))
        session.execute(update(Outbox).where(Outbox.conversation_id == second)
                        .values(status="sending", attempts=8, claimed_at=claimed))
    notify(desk, 10)  # leases (10m) not expired: nobody touches them
    assert {r["status"] for r in outbox(desk)} == {"queued", "retrying"} and connector.received() == []
    [run_record] = notify(desk, 16).json()
    assert run_record["counts"]["recovered"] == 2
    rows = {r["conversation_id"]: r for r in outbox(desk)}
    assert (rows[first]["status"], rows[first]["attempts"]) == ("sent", 2)
    assert rows[second]["status"] == "failed"
    assert rows[second]["last_error"] == "gave up after 8 attempts that never finished"
    assert [p["conversation_id"] for p in connector.received()] == [first]


def test_a_contact_known_by_handle_gets_it_in_to(chat):
    desk, connector = chat, chat.connector
    connector.set(code=0)
    cid = chat_conversation(desk, thread="anon", sender={"name": "Anon", "handle": "anon7"})
    [record] = ok(desk, "reply", cid, "hello", fmt="json").json()
    assert record["to"] == "anon7"
    notify(desk, 6)
    [payload] = connector.received()
    assert payload["to"] == {**payload["to"], "name": "Anon", "email": None, "phone": None, "handle": "anon7"}


def test_a_channel_with_time_left_takes_batch_after_batch(chat, monkeypatch):
    from deskctl.services.outbound import delivery

    desk, connector = chat, chat.connector
    connector.set(code=0)
    monkeypatch.setattr(delivery, "CHANNEL_BATCH", 2)
    for n in range(5):
        ok(desk, "reply", chat_conversation(desk, thread=f"t-{n}"), f"r{n}")
    [run_record] = notify(desk, 6).json()
    assert run_record["counts"]["sent"] == 5 and len(connector.received()) == 5
    assert {r["status"] for r in outbox(desk)} == {"sent"}
