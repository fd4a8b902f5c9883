"""The `notify` job: deliver the outbox (SPEC §5, §11).

SMTP when `smtp.host` is set, else the log (logger `deskctl.notify`); replies on other
channels through their `delivery` connectors. At-least-once:
rows are claimed and committed before sending, marked sent and committed after, so
this job commits as it goes rather than once at the end.
"""

from __future__ import annotations

from datetime import datetime


def run(session, *, now: datetime, settings) -> dict:
    from deskctl.services.outbound import notifications
    return notifications.deliver(session, now=now, settings=settings)
