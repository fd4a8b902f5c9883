"""Generated inputs for the ingest benchmarks: an mbox, a Maildir and a JSON-lines file.

A third of the messages answer an earlier one (In-Reply-To / same thread), a tenth carry
an HTML part, the rest start new conversations, from a pool of senders."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path


def _senders(rng: random.Random, count: int) -> list[tuple[str, str]]:
    first = ("Lea", "Hugo", "Nina", "Omar", "Zoe", "Paul", "Ines", "Tom", "Eva", "Max")
    last = ("Durand", "Martin", "Roy", "Petit", "Faure", "Blanc", "Moreau", "Simon")
    out = []
    for i in range(max(1, count // 3)):
        f, la = rng.choice(first), rng.choice(last)
        out.append((f"{f} {la}", f"{f.lower()}.{la.lower()}.{i}@bench.example"))
    return out


def mails(count: int, *, now: datetime, seed: int = 1, prefix: str = "bench"):
    """(sender address, date, raw bytes) of `count` generated mails, in order."""
    rng = random.Random(seed)
    senders = _senders(rng, count)
    ids: list[tuple[str, str, str]] = []  # (message id, subject, sender)
    start = now - timedelta(days=2)
    for i in range(count):
        at = start + timedelta(seconds=i * 172_800 // max(count, 1))
        msg = EmailMessage()
        mid = f"{prefix}-{i}@bench.example"
        if ids and rng.random() < 0.33:
            parent, subject, sender = ids[rng.randrange(len(ids))]
            msg["Subject"] = f"Re: {subject}"
            msg["In-Reply-To"] = f"<{parent}>"
            msg["References"] = f"<{parent}>"
            name, email = sender
        else:
            name, email = senders[rng.randrange(len(senders))]
            subject = f"Order {rng.randrange(10_000, 99_999)}: question {i}"
            msg["Subject"] = subject
            sender = (name, email)
        ids.append((mid, subject, sender))
        msg["From"] = f"{name} <{email}>"
        msg["To"] = "support@example.com"
        msg["Date"] = format_datetime(at)
        msg["Message-ID"] = f"<{mid}>"
        text = f"Hello,\n\nmessage {i} about {subject}.\nThanks,\n{name}\n"
        msg.set_content(text)
        if rng.random() < 0.1:
            msg.add_alternative(f"<p>Hello,</p><p>message {i} about <b>{subject}</b>.</p>", subtype="html")
        yield email, at, msg.as_bytes()


def write_mbox(path, count: int, *, now: datetime, seed: int = 1) -> None:
    with open(path, "wb") as out:
        for email, at, raw in mails(count, now=now, seed=seed):
            raw = raw.replace(b"\nFrom ", b"\n>From ")
            out.write(f"From {email} {at.strftime('%a %b %d %H:%M:%S %Y')}\n".encode())
            out.write(raw)
            if not raw.endswith(b"\n"):
                out.write(b"\n")
            out.write(b"\n")


def write_maildir(root: Path, count: int, *, now: datetime, seed: int = 3, prefix: str = "bench") -> list[Path]:
    """A Maildir (new/, cur/, tmp/) with `count` mails in new/, named in delivery order;
    returns their paths."""
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (_email, at, raw) in enumerate(mails(count, now=now, seed=seed, prefix=prefix)):
        path = root / "new" / f"{int(at.timestamp())}.M{i:06d}P1.bench"
        path.write_bytes(raw)
        paths.append(path)
    return paths


def write_jsonl(path, count: int, *, now: datetime, seed: int = 2) -> None:
    rng = random.Random(seed)
    senders = _senders(rng, count)
    channels = ("chat", "sms", "social", "web")
    threads: list[tuple[str, str, tuple]] = []
    start = now - timedelta(days=2)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(count):
            at = start + timedelta(seconds=i * 172_800 // max(count, 1))
            if threads and rng.random() < 0.5:
                channel, thread, sender = threads[rng.randrange(len(threads))]
            else:
                channel, thread = rng.choice(channels), f"bench-thread-{i}"
                sender = senders[rng.randrange(len(senders))]
                threads.append((channel, thread, sender))
            out.write(json.dumps({
                "channel": channel, "thread": thread, "id": f"bench-m-{i}", "at": at.isoformat(),
                "from": {"name": sender[0], "email": sender[1], "phone": None, "handle": None},
                "text": f"Message {i}: can you help me with my order?", "subject": None, "group": None,
                "priority": None, "attachments": [],
            }, ensure_ascii=False) + "\n")
