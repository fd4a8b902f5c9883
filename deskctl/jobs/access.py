"""Who may run a job by hand (`deskctl jobs run`, SPEC §13).

A run by hand does the daemon's work at a time the caller picks, so it needs the admin
role, or no user at all when the process runs as the desk's service account:

- `service_user` set in config: the OS account with that name;
- `service_user` null: on SQLite, the OS account that owns the database file (the
  daemon's, which created it; whoever owns the file can change anything in it anyway);
  on PostgreSQL there is no default: set `service_user`, or run as an admin.

The OS account is that of the process's effective uid, never $USER or $LOGNAME, which
anyone can set. Naming a user (--as, DESKCTL_USER) always means that user, who must be
an admin: an agent cannot run jobs by naming themselves or a handle that does not exist.
"""

from __future__ import annotations

import os

from deskctl.errors import Forbidden


def os_account() -> str | None:
    """The name of the process's effective uid (None when it has no passwd entry)."""
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return None


def is_service_account(settings) -> bool:
    """Whether this process runs as the desk's service account."""
    if settings.service_user:
        return os_account() == settings.service_user
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return False
    try:
        return os.stat(url.database).st_uid == os.geteuid()
    except OSError:
        return False


def check_may_run_jobs(app, session) -> None:
    """Forbidden (5) unless the actor is an admin, or no user was named and the process
    runs as the service account."""
    if not app.actor_named and is_service_account(app.settings):
        return
    actor = app.actor(session)  # an unknown handle: exit 5 there
    if not actor.is_admin:
        raise Forbidden(f"jobs run needs the admin role ({actor.handle} is {actor.role}), or no --as / "
                        "DESKCTL_USER when run as the desk's service account (service_user)")
