"""The `mail-poll` job: ingest the Maildir's new/ in one process (SPEC §11).

Runs when `mail.maildir` is set (every minute by default). Batches are committed as they
go and each handled file is moved to cur/NAME:2,S after its batch commits, as `ingest
email --maildir D --move` does (the same service).
"""

from __future__ import annotations

from datetime import datetime


def run(session, *, now: datetime, settings) -> dict:
    from deskctl.services.inbound import maildir
    return maildir.poll(session, now=now, settings=settings)
