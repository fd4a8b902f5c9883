"""Generated inbound traffic for benchmarks and load tests: an mbox of realistic email
(new threads and replies, HTML alternatives, attachments, ISO-8859-1 bodies) and a
JSON-lines file of chat/SMS/social messages. Deterministic for a given seed.

    python -m deskctl.services.samples mbox out.mbox 10000
    python -m deskctl.services.samples jsonl out.jsonl 100000
    python -m deskctl.services.samples bench [N_MAIL] [N_JSONL]   # rates on a fresh SQLite desk
"""

from __future__ import annotations

import base64
import json
import random
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

START = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
FIRST = ["Léa", "Marc", "Chloé", "Hugo", "Inès", "Lucas", "Zoé", "Nathan", "Emma", "Jules", "Anaïs", "Paul"]
LAST = ["Dubois", "Martin", "Bernard", "Petit", "Durand", "Lefèvre", "Moreau", "Girard", "Roux", "Faure"]
TOPICS = ["Facture incorrecte", "Impossible de me connecter", "Question sur la livraison", "Demande de devis",
          "Résiliation de contrat", "Export CSV vide", "Changement d'adresse", "Remboursement"]
LINES = ["Bonjour,", "Pouvez-vous m'aider ?", "Merci d'avance pour votre retour.",
         "Le problème persiste depuis hier.", "Voici les détails ci-dessous.", "Cordialement,"]


def _encoded_word(text: str) -> str:
    from email.header import Header

    return Header(text, "utf-8").encode()


def mbox_messages(n: int, seed: int = 1):
    """Yield (from_line, raw bytes) for n messages: about 55% new threads, 45% replies
    (In-Reply-To/References), 30% multipart/alternative with HTML, 8% with an attachment
    (2-40 KB), 10% ISO-8859-1 bodies."""
    rng = random.Random(seed)
    threads: list[tuple[str, str, list[str]]] = []  # (address, subject, message ids)
    for i in range(n):
        at = START + timedelta(seconds=37 * i)
        if threads and rng.random() < 0.45:
            address, subject, ids = rng.choice(threads[-500:])
            subject_line = "Re: " + subject
        else:
            first, last = rng.choice(FIRST), rng.choice(LAST)
            address = f"{first.lower()}.{last.lower()}{rng.randint(1, 999)}@example.fr".encode(
                "ascii", "ignore").decode()
            subject = f"{rng.choice(TOPICS)} ({rng.randint(1000, 9999)})"
            ids = []
            threads.append((address, subject, ids))
            subject_line = subject
            name = f"{first} {last}"
        name = address.split("@")[0].split(".")[0].title()
        message_id = f"gen-{seed}-{i}@example.fr"
        body = "\n".join(rng.sample(LINES, 4)) + f"\n\nRéférence client : FR-{rng.randint(10000, 99999)}\n"
        headers = [
            f"Return-Path: <{address}>",
            "Received: from mail.example.fr (mail.example.fr [192.0.2.10]) by mx.desk.example (Postfix)"
            f" with ESMTPS id {i:08X}; {format_datetime(at)}",
            f"From: {_encoded_word(name)} <{address}>",
            "To: support@desk.example",
            f"Subject: {_encoded_word(subject_line)}",
            f"Date: {format_datetime(at)}",
            f"Message-ID: <{message_id}>",
            "MIME-Version: 1.0",
        ]
        if ids:
            headers.append(f"In-Reply-To: <{ids[-1]}>")
            headers.append("References: " + " ".join(f"<{r}>" for r in ids[-8:]))
        ids.append(message_id)
        roll = rng.random()
        if roll < 0.08:
            data = rng.randbytes(rng.randint(2_000, 40_000))
            encoded = base64.encodebytes(data).decode()
            headers.append('Content-Type: multipart/mixed; boundary="b1"')
            payload = ("\n--b1\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
                       f"{body}\n--b1\nContent-Type: application/pdf; name=\"doc{i}.pdf\"\n"
                       f"Content-Disposition: attachment; filename=\"doc{i}.pdf\"\n"
                       f"Content-Transfer-Encoding: base64\n\n{encoded}--b1--\n")
            raw = "\n".join(headers) + "\n" + payload
            encoded_raw = raw.encode("utf-8")
        elif roll < 0.38:
            html = "<html><body>" + "".join(f"<p>{line}</p>" for line in body.splitlines() if line) + \
                   f'<table><tr><td>Dossier</td><td><a href="https://desk.example/d/{i}">{i}</a></td></tr>' \
                   "</table></body></html>"
            headers.append('Content-Type: multipart/alternative; boundary="alt"')
            raw = "\n".join(headers) + (
                "\n\n--alt\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
                f"{body}\n--alt\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
                f"{html}\n--alt--\n")
            encoded_raw = raw.encode("utf-8")
        elif roll < 0.48:
            headers += ["Content-Type: text/plain; charset=ISO-8859-1", "Content-Transfer-Encoding: 8bit"]
            encoded_raw = ("\n".join(headers) + "\n\n" + body).encode("latin-1", "replace")
        else:
            headers += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
            encoded_raw = ("\n".join(headers) + "\n\n" + body).encode("utf-8")
        yield f"From {address} {at.strftime('%a %b %d %H:%M:%S %Y')}", encoded_raw


def write_mbox(path, n: int, seed: int = 1) -> None:
    with open(path, "wb") as fh:
        for from_line, raw in mbox_messages(n, seed):
            body = b"\n".join((b">" + line) if line.startswith(b"From ") else line for line in raw.split(b"\n"))
            fh.write(from_line.encode() + b"\n" + body.rstrip(b"\n") + b"\n\n")


def jsonl_lines(n: int, seed: int = 1):
    """n JSON lines: chat, sms and social threads of 1-6 messages each."""
    rng = random.Random(seed)
    open_threads: list[tuple[str, str, dict]] = []
    for i in range(n):
        at = START + timedelta(seconds=3 * i)
        if open_threads and rng.random() < 0.6:
            channel, thread, sender = rng.choice(open_threads[-300:])
        else:
            channel = rng.choice(["chat", "chat", "sms", "social"])
            thread = f"{channel}-{seed}-{i}"
            first, last = rng.choice(FIRST), rng.choice(LAST)
            if channel == "sms":
                sender = {"name": f"{first} {last}", "phone": f"+336{rng.randint(10000000, 99999999)}"}
            elif channel == "social":
                sender = {"name": f"{first} {last}", "handle": f"@{first.lower()}{rng.randint(1, 9999)}"}
            else:
                sender = {"name": f"{first} {last}", "email": f"{first.lower()}{rng.randint(1, 99999)}@example.fr"
                          .encode("ascii", "ignore").decode()}
            open_threads.append((channel, thread, sender))
        yield json.dumps({"channel": channel, "thread": thread, "id": f"{thread}-m{i}",
                          "at": at.isoformat().replace("+00:00", "Z"), "from": sender,
                          "text": " ".join(rng.sample(LINES, 3)), "subject": None, "group": None,
                          "priority": None, "attachments": []}, ensure_ascii=False)


def write_jsonl(path, n: int, seed: int = 1) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for line in jsonl_lines(n, seed):
            fh.write(line + "\n")


def bench(n_mail: int = 10_000, n_jsonl: int = 50_000) -> dict:
    """Ingest a generated mbox and JSON-lines file into a fresh SQLite desk, in process,
    through the real commands; returns the rates and the stdlib-only parse baseline."""
    import mailbox
    import os
    import tempfile
    import time
    from email import policy
    from email.parser import BytesParser

    from click.testing import CliRunner

    from deskctl.cli import cli

    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="deskctl-bench-") as tmp:
        mbox, lines = os.path.join(tmp, "in.mbox"), os.path.join(tmp, "in.jsonl")
        write_mbox(mbox, n_mail)
        write_jsonl(lines, n_jsonl)
        # "now" just after the last generated message: SLA clocks are running, not all breached.
        now = START + timedelta(seconds=max(37 * n_mail, 3 * n_jsonl) + 60)
        config = os.path.join(tmp, "replay.yaml")  # DESKCTL_NOW needs the clock override (SPEC §13)
        with open(config, "w", encoding="utf-8") as fh:
            fh.write("clock: {override: true}\n")
        env = {"DESKCTL_DATABASE_URL": f"sqlite:///{tmp}/desk.db", "XDG_DATA_HOME": tmp, "DESKCTL_USER": "bench",
               "DESKCTL_NOW": now.isoformat(), "DESKCTL_CONFIG": config}
        runner = CliRunner()
        runner.invoke(cli, ["db", "upgrade"], env=env)

        started, cpu = time.perf_counter(), time.process_time()
        parser = BytesParser(policy=policy.default)
        box = mailbox.mbox(mbox, create=False)
        for key in box.iterkeys():
            msg = parser.parsebytes(box.get_bytes(key))
            msg.get_body(preferencelist=("plain", "html"))
        box.close()
        baseline, baseline_cpu = time.perf_counter() - started, time.process_time() - cpu

        started, cpu = time.perf_counter(), time.process_time()
        result = runner.invoke(cli, ["ingest", "email", "--mbox", mbox, "--format", "jsonl"], env=env)
        mail_s, mail_cpu = time.perf_counter() - started, time.process_time() - cpu
        assert result.exit_code == 0, result.output[-2000:]
        started, cpu = time.perf_counter(), time.process_time()
        result = runner.invoke(cli, ["ingest", "jsonl", lines, "--format", "jsonl"], env=env)
        jsonl_s, jsonl_cpu = time.perf_counter() - started, time.process_time() - cpu
        assert result.exit_code == 0, result.output[-2000:]
    out["email_msgs"] = n_mail
    # Wall-clock rates, and rates per CPU second of this process (steadier on a busy machine).
    out["email_per_s"] = round(n_mail / mail_s)
    out["email_per_cpu_s"] = round(n_mail / mail_cpu)
    out["stdlib_parse_per_s"] = round(n_mail / baseline)
    out["stdlib_parse_per_cpu_s"] = round(n_mail / baseline_cpu)
    out["email_vs_stdlib_parse"] = round(baseline_cpu / mail_cpu, 2)
    out["jsonl_msgs"] = n_jsonl
    out["jsonl_per_s"] = round(n_jsonl / jsonl_s)
    out["jsonl_per_cpu_s"] = round(n_jsonl / jsonl_cpu)
    return out


def main(argv: list[str]) -> int:
    if len(argv) >= 1 and argv[0] == "bench":
        n_mail = int(argv[1]) if len(argv) > 1 else 10_000
        n_jsonl = int(argv[2]) if len(argv) > 2 else 50_000
        for key, value in bench(n_mail, n_jsonl).items():
            print(f"{key}\t{value}")
        return 0
    if len(argv) == 3 and argv[0] in ("mbox", "jsonl"):
        (write_mbox if argv[0] == "mbox" else write_jsonl)(argv[1], int(argv[2]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
