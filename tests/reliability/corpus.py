"""Generators for the malformed-input corpus (test_malformed.py): broken emails and
broken JSON lines, built in the test from a seed so nothing large is checked in.

Each item is (name, bytes). Every kind of breakage named in issue 8 is covered:
truncated MIME, bad charsets, 0-byte files, a big body, header injection in subjects,
NUL bytes, plus garbage, oversized headers and deep nesting.
"""

from __future__ import annotations

import base64
import json
import random

GOOD = (
    "From: Lea Dubois <lea{n}@example.fr>\r\n"
    "To: support@example.com\r\n"
    "Subject: Invoice {n}\r\n"
    "Message-ID: <corpus-{n}@example.fr>\r\n"
    "Date: Fri, 20 Nov 2026 10:00:00 +0000\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"BOUND{n}\"\r\n"
    "\r\n"
    "--BOUND{n}\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Bonjour, ma facture n'est pas arrivée.\r\n"
    "--BOUND{n}\r\n"
    "Content-Type: application/pdf; name=\"facture.pdf\"\r\n"
    "Content-Disposition: attachment; filename=\"facture.pdf\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "{b64}\r\n"
    "--BOUND{n}--\r\n"
)


def _headers(n: int, subject: str = "Question", extra: str = "", ctype: str = "text/plain; charset=utf-8",
             sender: str | None = None) -> bytes:
    sender = sender if sender is not None else f"Customer {n} <c{n}@example.fr>"
    return (f"From: {sender}\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <corpus-{n}@example.fr>\r\nDate: Fri, 20 Nov 2026 10:00:00 +0000\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: {ctype}\r\n{extra}\r\n").encode("utf-8", "surrogateescape")


def good_mail(n: int) -> bytes:
    b64 = base64.encodebytes(b"%PDF-1.4 " + bytes(range(256)) * 4).decode().replace("\n", "\r\n").strip()
    return GOOD.format(n=n, b64=b64).encode("utf-8")


def broken_mails(seed: int = 8, big_bytes: int = 2 * 1024 * 1024) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    items: list[tuple[str, bytes]] = []
    n = 10_000

    def add(kind, raw):
        nonlocal n
        items.append((f"{len(items):03d}-{kind}", raw))
        n += 1

    # truncated MIME: a good multipart message cut anywhere
    for _ in range(40):
        raw = good_mail(n)
        add("truncated", raw[:rng.randint(1, len(raw) - 1)])
    # bad charsets and encodings
    charsets = ["x-unknown-42", "utf-8", "us-ascii", "iso-2022-jp", "utf-16", "utf-7", "gb2312", "", "\"", "ébc"]
    for i in range(30):
        cs = charsets[i % len(charsets)]
        body = bytes(rng.randrange(128, 256) for _ in range(rng.randint(1, 200)))
        cte = ["8bit", "base64", "quoted-printable", "x-bogus", "7bit"][i % 5]
        if cte == "base64" and i % 2:
            body = b"!!!not base64@@@" + body
        add("charset", _headers(n, ctype=f"text/plain; charset=\"{cs}\"",
                                extra=f"Content-Transfer-Encoding: {cte}\r\n") + body)
    for i in range(10):  # encoded words with unknown charsets or broken payloads
        subject = ["=?x-nope?B?SGVsbG8=?=", "=?utf-8?B?////?=", "=?utf-8?Q?caf=E9=?=", "=?utf-8?B?", "=?=?="][i % 5]
        add("encoded-word", _headers(n, subject=subject) + b"body\r\n")
    # 0-byte and almost empty files
    for raw in (b"", b"\r\n", b"\n\n\n", b" ", b"From: \r\n\r\n", b"\x00"):
        add("empty", raw)
    # header injection in subjects (and in other headers)
    injections = ["Hello\r\nBcc: evil@attacker.example", "=?utf-8?q?hi=0D=0ABcc:_evil@attacker.example?=",
                  "Hi\nX-Injected: 1", "[#1] Re: hi\r\n\r\n<html>", "[#99999999999999999999] huge tag",
                  "[#0] zero", "[#-1] negative", "=HYPERLINK(\"http://evil\")", "Re: " * 300,
                  "a" * 5000, "\u202eRTL override", "Subject: twice"]
    for i, subject in enumerate(injections * 2):
        extra = "In-Reply-To: <x@y>\r\nBcc: hidden@attacker.example\r\n" if i % 2 else ""
        add("injection", _headers(n, subject=subject, extra=extra) + b"Injected?\r\n")
    # NUL bytes in headers and bodies
    for i in range(15):
        where = i % 3
        if where == 0:
            raw = _headers(n, subject="nul\x00subject") + b"body\r\n"
        elif where == 1:
            raw = _headers(n) + b"before\x00after\r\n" * rng.randint(1, 50)
        else:
            raw = _headers(n, sender=f"nul\x00name <c{n}@example.fr>") + b"body\r\n"
        add("nul", raw)
    # senders: missing, invalid, enormous
    for sender in ["", "not an address", "<>", "@", "a@b@c", "x" * 3000 + "@example.fr", "\"unterminated <a@b.fr>",
                   "Léa <lea@exämple.fr>", "undisclosed-recipients:;", "a@b.fr, c@d.fr"]:
        add("sender", _headers(n, sender=sender) + b"who am I\r\n")
    # message ids: oversized, duplicated, missing, garbage
    for mid in ["<" + "m" * 2000 + "@example.fr>", "<dup@example.fr>", "<dup@example.fr>", "", "no-brackets",
                "<a@b> <c@d>", "<\x00@x>", "<@>"]:
        raw = _headers(n).replace(f"Message-ID: <corpus-{n}@example.fr>".encode(), f"Message-ID: {mid}".encode())
        add("message-id", raw + b"hello\r\n")
    # references: very long chains, garbage
    add("references", _headers(n, extra="References: " + " ".join(f"<r{i}@x>" for i in range(5000)) + "\r\n")
        + b"long thread\r\n")
    add("references", _headers(n, extra="In-Reply-To: " + "<" * 3000 + "\r\n") + b"x\r\n")
    # deep and odd MIME structures
    for depth in (5, 50, 200):
        parts = b""
        for level in range(depth):
            parts += (f"Content-Type: multipart/mixed; boundary=\"L{level}\"\r\n\r\n--L{level}\r\n").encode()
        add("nested", _headers(n, ctype="multipart/mixed; boundary=\"TOP\"") + b"--TOP\r\n" + parts + b"deep\r\n")
    add("multipart-no-boundary", _headers(n, ctype="multipart/mixed") + b"--x\r\nno boundary\r\n")
    add("multipart-empty", _headers(n, ctype="multipart/alternative; boundary=\"E\"") + b"--E--\r\n")
    add("html-only", _headers(n, ctype="text/html; charset=utf-8")
        + b"<html><script>alert(1)</script><p>Hi</p><p>" + b"<b>" * 5000 + b"</html>\r\n")
    # random garbage
    for _ in range(25):
        add("garbage", bytes(rng.randrange(256) for _ in range(rng.randint(1, 3000))))
    # headers only, no blank line; lone CR line ends; huge header line
    add("no-body", _headers(n).rstrip(b"\r\n"))
    add("cr-only", _headers(n).replace(b"\r\n", b"\r") + b"body\r")
    add("huge-header", _headers(n, extra="X-Long: " + "y" * 200_000 + "\r\n") + b"x\r\n")
    # a big body (2 MB by default, 50 MB under DESKCTL_STRESS)
    add("big", _headers(n) + (b"A big body line of text for the memory check.\r\n" * (big_bytes // 48 + 1)))
    return items


def broken_json_lines(seed: int = 8, *, deep: bool = False) -> list[bytes]:
    rng = random.Random(seed)
    good = {"channel": "chat", "thread": "t-1", "id": "m-1", "at": "2026-11-20T10:02:00Z",
            "from": {"name": "Léa", "email": "lea@example.fr", "phone": None, "handle": None},
            "text": "Bonjour", "subject": None, "group": None, "priority": None, "attachments": []}
    lines: list[bytes] = []

    def variant(i, **changes):
        obj = dict(good, thread=f"t-{i}", id=f"m-{i}")
        obj.update(changes)
        return json.dumps(obj).encode()

    for i in range(20):  # truncated
        line = variant(i)
        lines.append(line[:rng.randint(1, len(line) - 1)])
    bad_values = [
        {"channel": None}, {"channel": "pigeon"}, {"channel": 5}, {"thread": None}, {"thread": ["x"]},
        {"id": None}, {"id": 10 ** 40}, {"id": "x" * 5000}, {"at": "yesterday"}, {"at": "2026-13-45T99:00:00Z"},
        {"at": 1e308}, {"from": "lea@example.fr"}, {"from": None}, {"from": {"email": "not-an-address"}},
        {"from": {"email": None, "phone": None, "handle": None, "name": None}}, {"text": None}, {"text": ["a"]},
        {"text": "nul\u0000byte"}, {"text": "x" * 300_000}, {"subject": "\r\nBcc: evil@x"}, {"subject": {"a": 1}},
        {"group": "no-such-group"}, {"group": 7}, {"priority": "critical"}, {"priority": 1},
        {"attachments": "file"}, {"attachments": [{"name": "a", "data": "!!!notbase64"}]},
        {"attachments": [None]}, {"attachments": [{"name": "../../etc/passwd", "content_base64": "aGk="}]},
        {"text": "\ud800 lone surrogate"}, {"from": {"name": "\u0000", "email": "lea@example.fr"}},
        {"thread": "", "id": ""}, {"channel": ""},
    ]
    for i, change in enumerate(bad_values):
        lines.append(variant(100 + i, **change))
    lines += [b"", b"   ", b"null", b"[]", b"42", b"\"string\"", b"{}", b"{\"channel\": \"chat\"}", b"\xff\xfe{}",
              b"\x00\x00\x00", b"{\"text\": \"\xe9\"}", b"\xef\xbb\xbf" + variant(300), b"{\"a\": 1} trailing", b"NaN", b"{\"id\": NaN}", b"\x1a"]
    if deep:  # nesting deeper than Python's recursion limit
        lines += [b"{" * 100_000, b"[" * 100_000 + b"]" * 100_000, b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}"]
    for _ in range(15):
        lines.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 400))).replace(b"\n", b" "))
    return lines
