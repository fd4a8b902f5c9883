"""`deskctl demo`: a realistic, deterministic sample desk, built fast enough for benchmarks.

Everything is generated from one `random.Random(seed)` and the application clock, so a
seed and a `DESKCTL_NOW` give the same desk on every run and engine. Each conversation's
life is simulated step by step (created → claimed → maybe transferred → replied → notes,
more exchanges → maybe pending with or without a boomerang → resolved → closed with tags,
reason and CSAT) and cut off at `now`, so old conversations are closed and recent ones are
still new, open, pending or resolved, as on a real desk.

The rows are written with `db.bulk.Writer` (Core executemany in chunks, never the ORM unit of
work), with ids assigned here so messages, notes and events can refer to them without a
round trip; PostgreSQL sequences are moved past them at the end.

Fixed users other tools rely on (`make demo`, the docs): `admin` (role admin) and `alice`
(agent in billing, paris) who always has several conversations that are not closed.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from types import SimpleNamespace

from sqlalchemy import func, insert, select

from deskctl.db import bulk
from deskctl.errors import Conflict, Forbidden, UsageError
from deskctl.models import (
    Contact,
    Conversation,
    ConversationTag,
    Event,
    Group,
    GroupMember,
    Location,
    Message,
    Note,
    NoteVersion,
    SlaMark,
    User,
    Watcher,
)
from deskctl.services.sla.business_hours import calendar_for
from deskctl.services.sla.core import assess, compute, match_policy

MAX_CONVERSATIONS = 10_000_000
BATCH = 5_000  # conversations generated and written per round
DAY = 86_400.0
HOUR = 3_600.0
MINUTE = 60.0

# -- the directory -----------------------------------------------------------------------
LOCATIONS = ("paris", "lyon", "montreal")
GROUPS = (  # name, location
    ("billing", "paris"), ("support", "paris"), ("sales", "lyon"), ("tech", "lyon"),
    ("returns", "montreal"), ("accounts", "montreal"),
)
# handle, name, role, location, groups, availability
SUPERVISORS = (
    ("sophie", "Sophie Laurent", "paris", ("billing", "support")),
    ("marc", "Marc Girard", "lyon", ("sales", "tech")),
    ("julie", "Julie Tremblay", "montreal", ("returns", "accounts")),
)
AGENTS = (
    ("alice", "Alice Martin", "paris", ("billing",)),
    ("bob", "Bob Dupont", "paris", ("support",)),
    ("chloe", "Chloé Bernard", "paris", ("billing", "support")),
    ("david", "David Petit", "paris", ("support",)),
    ("emma", "Emma Robert", "paris", ("billing",)),
    ("farid", "Farid Haddad", "paris", ("support",)),
    ("gabriel", "Gabriel Moreau", "paris", ("billing",)),
    ("hugo", "Hugo Fournier", "paris", ("support",)),
    ("ines", "Inès Lefebvre", "lyon", ("sales",)),
    ("jules", "Jules Mercier", "lyon", ("tech",)),
    ("karim", "Karim Benali", "lyon", ("tech", "sales")),
    ("lea", "Léa Rousseau", "lyon", ("sales",)),
    ("manon", "Manon Blanc", "lyon", ("tech",)),
    ("nathan", "Nathan Guerin", "lyon", ("sales",)),
    ("olivia", "Olivia Faure", "lyon", ("tech",)),
    ("paul", "Paul Gagnon", "montreal", ("returns",)),
    ("quentin", "Quentin Roy", "montreal", ("accounts",)),
    ("rose", "Rose Côté", "montreal", ("returns", "accounts")),
    ("samuel", "Samuel Bouchard", "montreal", ("accounts",)),
    ("theo", "Théo Gauthier", "montreal", ("returns",)),
    ("ursula", "Ursula Morin", "montreal", ("accounts",)),
    ("victor", "Victor Lavoie", "paris", ("billing", "support")),
    ("wendy", "Wendy Pelletier", "montreal", ("returns",)),
    ("yanis", "Yanis Chevalier", "lyon", ("sales", "tech")),
)
ADMIN = ("admin", "Desk Admin", None, ())
AVAILABILITY = ("available", "available", "available", "away", "offline")

# -- conversations -------------------------------------------------------------------------
CHANNELS = (("email", 40), ("chat", 20), ("web", 12), ("sms", 10), ("phone", 10), ("social", 8))
PRIORITIES = (("low", 50), ("medium", 30), ("high", 15), ("urgent", 5))
GROUP_WEIGHTS = {"billing": 24, "support": 26, "sales": 14, "tech": 16, "returns": 12, "accounts": 8}
SUBJECTS = {
    "billing": ("Invoice {n} is wrong", "Charged twice this month", "Refund for order {n}",
                "Cannot download my invoice", "VAT number missing on invoice {n}", "Payment declined"),
    "support": ("Cannot log in", "Password reset link expired", "App crashes on start",
                "How do I export my data?", "Account locked", "Two-factor code never arrives"),
    "sales": ("Quote for {n} seats", "Upgrade to the business plan", "Discount for non-profits?",
              "Question about pricing", "Demo request", "Annual billing option"),
    "tech": ("API returns 500 on /orders", "Webhook not delivered", "Integration with our CRM",
             "Rate limit too low", "SSO configuration", "Outage this morning?"),
    "returns": ("Return label for order {n}", "Item arrived damaged", "Wrong size received",
                "Where is my refund?", "Exchange order {n}", "Missing item in parcel"),
    "accounts": ("Close my account", "Change the account owner", "Merge two accounts",
                 "Update company details", "GDPR data request", "Add a user to our account"),
}
TAGS = {
    "billing": ("invoice", "refund", "payment", "vat"),
    "support": ("login", "bug", "how-to", "2fa"),
    "sales": ("quote", "upgrade", "pricing", "demo"),
    "tech": ("api", "webhook", "integration", "outage"),
    "returns": ("return", "damaged", "exchange", "shipping"),
    "accounts": ("account", "gdpr", "owner-change", "closure"),
}
COMMON_TAGS = ("complaint", "feedback", "follow-up", "escalated")
REASONS = {
    "billing": ("billing error", "refund request", "payment issue"),
    "support": ("access problem", "product question", "bug report"),
    "sales": ("purchase intent", "pricing question", "plan change"),
    "tech": ("technical incident", "integration help", "configuration"),
    "returns": ("return request", "delivery problem", "product defect"),
    "accounts": ("account change", "data request", "account closure"),
}
TRANSFER_REASONS = ("wrong queue", "needs specialist", "language", "escalation")
INBOUND = ("Hello, {s}. Can you help me?", "Hi, I need help with this: {s}.",
           "Bonjour, {s}. Merci de votre aide.", "{s} — this is urgent for us.",
           "Following up on my request: {s}.")
FOLLOWUPS = ("Any news on this?", "Thanks, but it still does not work.", "Here is the screenshot you asked for.",
             "I tried again this morning, same problem.", "OK, and what about the second point?")
REPLIES = ("Thanks for reaching out, we are looking into it.", "Could you send us your account number?",
           "This is fixed on our side, can you try again?", "I have forwarded this to the right team.",
           "Here are the steps: open Settings, then Billing.", "Sorry for the trouble, a refund is on its way.")
NOTES = ("Customer called twice about this.", "Checked the logs: nothing on our side.",
         "Waiting for finance to confirm.", "Known issue, see the incident channel.",
         "VIP: handle with care.", "Asked engineering for an ETA.")
PENDING_NOTES = ("waiting for the customer's screenshot", "waiting for the bank confirmation",
                 "call back after the weekend", "waiting for the carrier", None)
FIRST_NAMES = ("Lea", "Lucas", "Camille", "Louis", "Chloe", "Adam", "Sarah", "Noah", "Jade", "Arthur",
               "Zoe", "Ethan", "Alice", "Tom", "Lina", "Maxime", "Anna", "Leo", "Eva", "Nina",
               "Olivier", "Sophie", "Yasmine", "Antoine", "Claire", "Mathis", "Julia", "Pierre")
LAST_NAMES = ("Dubois", "Martin", "Bernard", "Thomas", "Petit", "Durand", "Leroy", "Moreau", "Simon",
              "Laurent", "Lefevre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier",
              "Morel", "Girard", "Andre", "Tremblay", "Gagnon", "Roy", "Cote", "Bouchard", "Smith")
DOMAINS = ("example.com", "example.fr", "example.ca", "example.org", "mail.example.net")
COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", None, None)
CSAT = ((5, 45), (4, 30), (3, 12), (2, 7), (1, 6))
MESSAGE_TYPES = {"email": "email", "chat": "chat", "sms": "sms", "social": "direct_message",
                 "web": "web_form", "phone": "call_summary"}


class _Picker:
    """Weighted choice with precomputed cumulative weights (random.choices is slower)."""

    __slots__ = ("values", "cum", "total")

    def __init__(self, pairs):
        self.values = [v for v, _ in pairs]
        self.cum = list(accumulate(w for _, w in pairs))
        self.total = self.cum[-1]

    def __call__(self, rng: random.Random):
        return self.values[bisect(self.cum, rng.random() * self.total)]


def build(session, *, conversations: int, seed: int, now: datetime, settings, actor_handle: str | None = None,
          force: bool = False, progress: Callable[[int, int], None] | None = None) -> dict:
    """Fill the database with a demo desk. Returns counts of what was inserted.

    Refuses (Conflict, exit 4) when the database already has conversations, unless
    `force`, which adds the demo conversations to it (the directory is reused: users,
    groups, locations and contacts already there are kept, missing ones are added).
    With `force` on a desk that has an admin, `actor_handle` must be an admin.
    `progress(done, total)` is called as conversations are written."""
    if conversations < 0 or conversations > MAX_CONVERSATIONS:
        raise UsageError(f"the number of conversations must be between 0 and {MAX_CONVERSATIONS}",
                         option="conversations")
    existing = session.scalar(select(func.count()).select_from(Conversation))
    if existing and not force:
        raise Conflict(f"the database already has {existing} conversations; adding demo conversations "
                       "to it must be asked for", option="force")
    if force:
        _check_admin(session, actor_handle)
    rng = random.Random(seed)
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        # A big page cache for this connection: index inserts on a growing file stay in memory.
        conn.exec_driver_sql("PRAGMA cache_size=-262144")
    counts = {"locations": 0, "groups": 0, "users": 0, "contacts": 0}
    directory = _build_directory(conn, rng, now, counts)
    contacts = _build_contacts(conn, bulk.Writer(conn), rng, now, conversations, counts)
    counts.update(_build_conversations(conn, rng, now, settings, conversations, directory, contacts,
                                       progress or (lambda done, total: None)))
    if conn.dialect.name == "postgresql":
        bulk.advance_sequences(conn, ("conversations", "messages", "notes", "note_versions", "events"))
    return counts


def _check_admin(session, actor_handle: str | None) -> None:
    admins = session.scalar(select(func.count()).select_from(User).where(User.role == "admin", User.active))
    if not admins:
        return
    role = session.scalar(select(User.role).where(User.handle == (actor_handle or ""), User.active))
    if role != "admin":
        raise Forbidden("adding demo data to a desk with users needs an admin", option="as")


# -- directory -----------------------------------------------------------------------------
class _Directory:
    def __init__(self):
        self.group_ids: dict[str, int] = {}
        self.group_location: dict[str, int] = {}
        self.location_ids: dict[str, int] = {}
        self.user_ids: dict[str, int] = {}
        self.members: dict[str, list[str]] = {}  # group → agent handles (weighted: alice thrice)
        self.supervisors: dict[str, str] = {}  # group → supervisor handle


def _build_directory(conn, rng: random.Random, now: datetime, counts: dict) -> _Directory:
    d = _Directory()
    created = now - timedelta(days=60)
    have = dict(conn.execute(select(Location.name, Location.id)).all())
    new = [{"name": n, "created_at": created} for n in LOCATIONS if n not in have]
    if new:
        conn.execute(insert(Location.__table__), new)
        counts["locations"] = len(new)
    d.location_ids = dict(conn.execute(select(Location.name, Location.id)).all())

    have = {name for (name,) in conn.execute(select(Group.name))}
    new = [{"name": n, "location_id": d.location_ids[loc], "created_at": created}
           for n, loc in GROUPS if n not in have]
    if new:
        conn.execute(insert(Group.__table__), new)
        counts["groups"] = len(new)
    for name, gid, loc in conn.execute(select(Group.name, Group.id, Group.location_id)):
        d.group_ids[name] = gid
        d.group_location[name] = loc

    people = [(h, n, "admin", loc, g) for h, n, loc, g in (ADMIN,)]
    people += [(h, n, "supervisor", loc, g) for h, n, loc, g in SUPERVISORS]
    people += [(h, n, "agent", loc, g) for h, n, loc, g in AGENTS]
    have = {h for (h,) in conn.execute(select(User.handle))}
    new_users = []
    for handle, name, role, loc, _groups in people:
        availability = "available" if handle in ("admin", "alice") else AVAILABILITY[rng.randrange(5)]
        if handle in have:
            continue
        new_users.append({
            "handle": handle, "name": name, "email": f"{handle}@desk.example", "role": role,
            "availability": availability, "default_availability": "available",
            "location_id": d.location_ids.get(loc) if loc else None, "active": True, "created_at": created,
        })
    if new_users:
        conn.execute(insert(User.__table__), new_users)
        counts["users"] = len(new_users)
    d.user_ids = dict(conn.execute(select(User.handle, User.id)).all())
    have_members = set(conn.execute(select(GroupMember.group_id, GroupMember.user_id)).all())
    new_members = []
    for handle, _name, role, _loc, groups in people:
        for group in groups:
            key = (d.group_ids[group], d.user_ids[handle])
            if key not in have_members:
                have_members.add(key)
                new_members.append({"group_id": key[0], "user_id": key[1]})
            if role == "agent":
                d.members.setdefault(group, []).extend([handle] * (3 if handle == "alice" else 1))
            elif role == "supervisor":
                d.supervisors.setdefault(group, handle)
    if new_members:
        conn.execute(insert(GroupMember.__table__), new_members)
    return d


def _ascii_email(first: str, last: str, i: int, domain: str) -> str:
    return f"{first.lower()}.{last.lower()}.{i}@{domain}"


def _build_contacts(conn, writer, rng: random.Random, now: datetime, conversations: int, counts: dict) -> list:
    """Contacts: a quarter as many as conversations (so many write more than once), 5% VIP.
    Returns [(id, name, email, phone, vip)] in a deterministic order."""
    n = max(20, min(200_000, conversations // 4))
    rows = []
    for i in range(1, n + 1):
        first, last = FIRST_NAMES[rng.randrange(len(FIRST_NAMES))], LAST_NAMES[rng.randrange(len(LAST_NAMES))]
        vip = rng.random() < 0.05 or i <= 2
        company = COMPANIES[rng.randrange(len(COMPANIES))]
        attributes = {"plan": ("free", "pro", "business")[rng.randrange(3)]}
        if company:
            attributes["company"] = company
        rows.append({
            "name": f"{first} {last}", "email": _ascii_email(first, last, i, DOMAINS[rng.randrange(len(DOMAINS))]),
            "phone": f"+33 6 {rng.randrange(10**8):08d}", "account_id": f"ACC-{100000 + i}" if company else None,
            "vip": vip, "attributes": attributes, "created_at": now - timedelta(days=90, seconds=i),
        })
    by_email = {}
    for chunk in bulk.chunks(rows, 10_000):
        emails = [r["email"] for r in chunk]
        have = dict(conn.execute(select(Contact.email, Contact.id).where(Contact.email.in_(emails))).all())
        new = [r for r in chunk if r["email"] not in have]
        if new:
            writer.insert(Contact.__table__, new)
            counts["contacts"] += len(new)
        by_email.update(conn.execute(select(Contact.email, Contact.id).where(Contact.email.in_(emails))).all())
    return [(by_email[r["email"]], r["name"], r["email"], r["phone"], r["vip"]) for r in rows]


# -- conversations ---------------------------------------------------------------------------
class _Ids:
    def __init__(self, conn):
        self.conversation = bulk.next_id(conn, Conversation.__table__)
        self.message = bulk.next_id(conn, Message.__table__)
        self.note = bulk.next_id(conn, Note.__table__)
        self.note_version = bulk.next_id(conn, NoteVersion.__table__)
        self.event = bulk.next_id(conn, Event.__table__)


def _created_times(rng: random.Random, now: datetime, n: int) -> list[float]:
    """Offsets in seconds before `now` over the last 30 days, busier in working hours and on
    weekdays, sorted oldest first (so ids grow with creation time)."""
    base = now.timestamp()
    out = []
    for _ in range(n):
        ago = rng.random() * 30 * DAY
        t = base - ago
        if rng.random() < 0.65:  # pull most into 08:00-18:00 UTC of that day, Monday to Friday
            day_start = t - (t % DAY)
            if datetime.fromtimestamp(day_start, UTC).weekday() >= 5:
                day_start -= DAY * 2
            t2 = day_start + 8 * HOUR + rng.random() * 10 * HOUR
            if base - 30 * DAY <= t2 <= base - 60:
                t = t2
        out.append(int(t))
    out.sort()
    return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _build_conversations(conn, rng, now, settings, n, d: _Directory, contacts, progress) -> dict:
    ids = _Ids(conn)
    now_ts = now.timestamp()
    counts = {"conversations": 0, "messages": 0, "notes": 0, "events": 0, "tags": 0, "watchers": 0,
              "sla_marks": 0}
    if n == 0:
        return counts
    times = _created_times(rng, now, n)
    pick_channel = _Picker(CHANNELS)
    pick_priority = _Picker(PRIORITIES)
    pick_group = _Picker([(g, GROUP_WEIGHTS.get(g, 10)) for g, _ in GROUPS])
    pick_csat = _Picker(CSAT)
    location_names = {v: k for k, v in d.location_ids.items()}
    groups = [g for g, _ in GROUPS]
    warning_share = settings.sla.warning
    policies: dict = {}
    pinned = max(0, n - 6)  # the last 6 (the newest) are alice's open work in billing
    writer = bulk.Writer(conn)
    sim = _Sim(rng, now_ts, d, ids, pick_csat, groups, writer, settings)

    for start in range(0, n, BATCH):
        sim.reset()
        for index in range(start, min(n, start + BATCH)):
            contact = contacts[rng.randrange(len(contacts))]
            channel = pick_channel(rng)
            priority = pick_priority(rng)
            group = pick_group(rng)
            alice = index >= pinned
            if alice:
                group = "billing"
                priority = "medium" if priority == "low" else priority
            key = (contact[4], priority, channel, group)
            policy = policies.get(key, False)
            if policy is False:
                policy = policies[key] = match_policy(
                    settings.sla.policies, vip=contact[4], priority=priority, channel=channel, group=group,
                    location=location_names.get(d.group_location[group]))
            sim.conversation(times[index], contact, channel, priority, group, policy, warning_share, alice)
        for table, columns, rows in sim.tables():
            if rows:
                writer.insert_rows(table, columns, rows)
                name = _COUNT_NAMES.get(table.name, table.name)
                if name in counts:
                    counts[name] += len(rows)
        progress(min(n, start + BATCH), n)
    return counts


_COUNT_NAMES = {"conversation_tags": "tags"}
CONVERSATION_COLUMNS = (
    "id", "subject", "channel", "status", "priority", "assignee_id", "group_id", "location_id", "contact_id",
    "reason", "closing_note", "csat", "linked_to_id", "thread_key", "created_at", "updated_at", "boomerang_at",
    "claimed_at", "pending_since", "resolved_at", "closed_at", "first_inbound_at", "first_response_at",
    "last_inbound_at", "last_outbound_at", "sla_policy", "sla_state", "first_response_due", "next_response_due",
    "resolution_due", "sla_next_check_at", "sla_paused_s", "version",
)
MESSAGE_COLUMNS = (
    "id", "conversation_id", "direction", "author_user_id", "author_contact_id", "author_name", "channel",
    "message_type", "subject", "text", "html", "external_id", "in_reply_to", "references", "cc", "bcc",
    "created_at",
)


class _Sim:
    """Simulates one conversation at a time, appending rows to per-table lists."""

    def __init__(self, rng, now_ts, d: _Directory, ids: _Ids, pick_csat, groups, writer, settings):
        self.settings = settings
        self.dt = writer.db_time
        self.sqlite = writer.sqlite
        self.js = writer.db_json
        self.empty_list = writer.db_json([])
        self.rng = rng
        self.now_ts = now_ts
        self.d = d
        self.ids = ids
        self.pick_csat = pick_csat
        self.groups = groups
        self.reset()

    def reset(self):
        self.conversations: list[dict] = []
        self.messages: list[dict] = []
        self.notes: list[dict] = []
        self.note_versions: list[dict] = []
        self.events: list[dict] = []
        self.tags: list[dict] = []
        self.watchers: list[dict] = []
        self.marks: list[dict] = []

    def tables(self):
        return ((Conversation.__table__, CONVERSATION_COLUMNS, self.conversations),
                (Message.__table__, MESSAGE_COLUMNS, self.messages),
                (Event.__table__, ("id", "conversation_id", "at", "actor", "kind", "data"), self.events),
                (Note.__table__, ("id", "conversation_id", "author_id", "text", "event_id", "created_at",
                                  "updated_at", "deleted_at"), self.notes),
                (NoteVersion.__table__, ("id", "note_id", "version", "text", "author_id", "at"), self.note_versions),
                (ConversationTag.__table__, ("conversation_id", "tag"), self.tags),
                (Watcher.__table__, ("conversation_id", "user_id", "created_at"), self.watchers),
                (SlaMark.__table__, ("conversation_id", "target", "level", "at"), self.marks))

    def calendar(self, policy):
        return calendar_for(self.settings, policy.hours) if policy is not None else None

    # -- row helpers ------------------------------------------------------------------------
    def _event(self, cid, ts, actor, kind, data) -> int:
        eid = self.ids.event
        self.ids.event += 1
        self.events.append((eid, cid, self.dt(ts), actor, kind, self.js(data)))
        return eid

    def _message_event(self, cid, ts, actor, kind, message_id) -> None:
        """message_in/_out {message_id}: the most frequent event, its JSON written directly."""
        eid = self.ids.event
        self.ids.event += 1
        data = f'{{"message_id": {message_id}}}' if self.sqlite else self.js({"message_id": message_id})
        self.events.append((eid, cid, self.dt(ts), actor, kind, data))

    def _message(self, cid, ts, direction, channel, text, *, user=None, contact=None, subject=None,
                 in_reply_to=None) -> tuple[int, str]:
        mid = self.ids.message
        self.ids.message += 1
        email = channel == "email"
        if email:
            external = f"demo-{cid}-{mid}@{'desk.example' if direction == 'outbound' else 'mail.example'}"
        else:
            external = f"demo-{mid}"
        self.messages.append((
            mid, cid, direction, self.d.user_ids[user] if user else None, contact[0] if contact else None,
            contact[1] if contact else None, channel, MESSAGE_TYPES.get(channel), subject, text,
            f"<p>{text}</p>" if email and direction == "outbound" else None, external,
            in_reply_to if email else None, in_reply_to if email else None, self.empty_list, self.empty_list,
            self.dt(ts)))
        return mid, external

    def _note(self, cid, ts, handle, text, event_id=None) -> int:
        nid = self.ids.note
        self.ids.note += 1
        uid = self.d.user_ids[handle]
        at = self.dt(ts)
        self.notes.append((nid, cid, uid, text, event_id, at, at, None))
        self.note_versions.append((self.ids.note_version, nid, 1, text, uid, at))
        self.ids.note_version += 1
        return nid

    def _agent(self, group, avoid=None) -> str:
        members = self.d.members.get(group) or [self.d.supervisors.get(group) or "admin"]
        handle = members[self.rng.randrange(len(members))]
        if handle == avoid and len(set(members)) > 1:
            while handle == avoid:
                handle = members[self.rng.randrange(len(members))]
        return handle

    # -- one conversation ------------------------------------------------------------------
    def conversation(self, created, contact, channel, priority, group, policy, warning_share, alice):
        rng, now = self.rng, self.now_ts
        cid = self.ids.conversation
        self.ids.conversation += 1
        template = SUBJECTS[group][rng.randrange(6)]
        subject = template.format(n=rng.randrange(10_000, 99_999))
        speed = {"urgent": 0.2, "high": 0.5}.get(priority, 1.0)
        s = {  # the conversation's state as the simulation advances
            "status": "new", "assignee": None, "group": group, "claimed_at": None, "pending_since": None,
            "resolved_at": None, "closed_at": None, "first_response_at": None, "last_outbound": None,
            "boomerang": None, "reason": None, "csat": None, "closing_note": None, "pauses": [], "updated": created,
        }
        last_external = None
        self._event(cid, created, "system" if channel != "phone" else self._agent(group), "created",
                    {"channel": channel, "source": "demo"})
        mid, last_external = self._message(cid, created, "inbound", channel, INBOUND[rng.randrange(5)].format(
            s=subject.lower()), contact=contact, subject=subject if channel == "email" else None)
        self._message_event(cid, created, "system", "message_in", mid)
        last_inbound = created
        t = created

        def advance(seconds) -> bool:
            nonlocal t
            t += int(seconds) + 1  # whole seconds, and time always moves on
            if t > now:
                return False
            s["updated"] = t
            return True

        def claim(handle):
            s["assignee"], s["status"], s["claimed_at"] = handle, "open", t
            self._event(cid, t, handle, "claimed", {})

        def reply():
            nonlocal last_external
            handle = s["assignee"]
            mid, ext = self._message(cid, t, "outbound", channel, REPLIES[rng.randrange(6)], user=handle,
                                     subject=f"[#{cid}] Re: {subject}" if channel == "email" else None,
                                     in_reply_to=last_external)
            last_external = ext
            self._message_event(cid, t, handle, "message_out", mid)
            if s["first_response_at"] is None:
                s["first_response_at"] = t
            s["last_outbound"] = t

        def inbound(text):
            nonlocal last_external, last_inbound
            mid, ext = self._message(cid, t, "inbound", channel, text, contact=contact,
                                     subject=f"Re: [#{cid}] {subject}" if channel == "email" else None,
                                     in_reply_to=last_external)
            last_external = ext
            last_inbound = t
            self._message_event(cid, t, "system", "message_in", mid)

        def life():
            # claim
            if not advance(rng.triangular(2 * MINUTE, 4 * HOUR, 2 * MINUTE) * speed):
                return
            claim(self._agent(s["group"]) if not alice else "alice")
            # transfer to another group (15%), with an internal note
            if not alice and rng.random() < 0.15:
                if not advance(rng.uniform(5 * MINUTE, HOUR)):
                    return
                source, actor = s["group"], s["assignee"]
                target = self.groups[rng.randrange(len(self.groups))]
                while target == source:
                    target = self.groups[rng.randrange(len(self.groups))]
                reason = TRANSFER_REASONS[rng.randrange(len(TRANSFER_REASONS))]
                note_id = self.ids.note
                eid = self._event(cid, t, actor, "transferred", {
                    "from_user": actor, "to_user": None, "from_group": source, "to_group": target,
                    "reason": reason, "note_id": note_id})
                self._note(cid, t, actor, f"Transferring to {target}: {reason}.", event_id=eid)
                self.watchers.append((cid, self.d.user_ids[actor], self.dt(t)))
                self._event(cid, t, actor, "watched", {"user": actor})
                s["group"], s["assignee"], s["status"] = target, None, "new"
                if not advance(rng.triangular(5 * MINUTE, 3 * HOUR, 5 * MINUTE) * speed):
                    return
                claim(self._agent(target, avoid=actor))
            # first reply
            if not advance(rng.triangular(MINUTE, 3 * HOUR, MINUTE) * speed):
                return
            reply()
            if rng.random() < 0.3:
                if not advance(rng.uniform(MINUTE, HOUR)):
                    return
                text = NOTES[rng.randrange(len(NOTES))]
                nid = self._note(cid, t, s["assignee"], text)
                self._event(cid, t, s["assignee"], "note_added", {"note_id": nid, "text": text, "previous_text": None})
            # more exchanges
            for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
                if not advance(rng.triangular(10 * MINUTE, DAY, 10 * MINUTE)):
                    return
                inbound(FOLLOWUPS[rng.randrange(len(FOLLOWUPS))])
                if not advance(rng.triangular(5 * MINUTE, 8 * HOUR, 5 * MINUTE) * speed):
                    return
                reply()
            # pending (25%): with a boomerang (half) or waiting for the contact
            if rng.random() < (0.6 if alice else 0.25):
                if not advance(rng.uniform(MINUTE, 30 * MINUTE)):
                    return
                boomerang = t + int(rng.uniform(4 * HOUR, 3 * DAY)) if rng.random() < 0.5 else None
                note = PENDING_NOTES[rng.randrange(len(PENDING_NOTES))]
                self._event(cid, t, s["assignee"], "pending",
                            {"until": _iso(boomerang) if boomerang else None, "note": note})
                s["status"], s["pending_since"], s["boomerang"] = "pending", t, boomerang
                since = t
                if boomerang is not None:
                    if boomerang > now:
                        return
                    advance(boomerang - t)
                    self._event(cid, t, "system", "boomerang_returned",
                                {"previous_status": "pending", "boomerang_at": _iso(boomerang)})
                else:
                    if not advance(rng.triangular(HOUR, 2 * DAY, HOUR)):
                        return
                    inbound(FOLLOWUPS[rng.randrange(len(FOLLOWUPS))])
                    self._event(cid, t, "system", "reopened", {"previous_status": "pending", "cause": "contact_reply"})
                s["pauses"].append((since, t))
                s["status"], s["pending_since"], s["boomerang"] = "new", None, None
                if alice:
                    return
                if not advance(rng.uniform(5 * MINUTE, 4 * HOUR) * speed):
                    return
                claim(s["assignee"])
                if not advance(rng.uniform(5 * MINUTE, 2 * HOUR)):
                    return
                reply()
            if alice:
                return
            # resolve (30%, closed later) or close directly
            if not advance(rng.triangular(10 * MINUTE, 2 * DAY, 10 * MINUTE)):
                return
            handle = s["assignee"]
            if rng.random() < 0.35:
                self._event(cid, t, handle, "resolved", {"until": None})
                s["status"], s["resolved_at"] = "resolved", t
                if not advance(rng.triangular(HOUR, 2 * DAY, HOUR)):
                    return
            tags = list({TAGS[s["group"]][rng.randrange(4)] for _ in range(rng.choice((1, 1, 2)))})
            if rng.random() < 0.1:
                tags.append(COMMON_TAGS[rng.randrange(4)])
            tags.sort()
            reason = REASONS[s["group"]][rng.randrange(3)]
            csat = self.pick_csat(rng) if rng.random() < 0.6 else None
            self._event(cid, t, handle, "closed", {"status": "closed", "tags": tags, "reason": reason, "csat": csat})
            for tag in tags:
                self.tags.append((cid, tag))
            s.update(status="closed", resolved_at=t, closed_at=t, reason=reason, csat=csat,
                     closing_note="Solved." if rng.random() < 0.2 else None)

        life()
        # -- SLA columns (24x7 clock; see docs/demo.md) ----------------------------------------
        sla = _sla(policy, self.calendar(policy), s, created, last_inbound, now, warning_share)
        for target, level, at, due in sla["marks"]:
            self.marks.append((cid, target, level, self.dt(at)))
            self._event(cid, at, "system", f"sla_{level}", {"target": target, "due": _iso(due)})
        group_name = s["group"]
        dt = self.dt
        self.conversations.append((
            cid, subject, channel, s["status"], priority,
            self.d.user_ids[s["assignee"]] if s["assignee"] else None,
            self.d.group_ids[group_name], self.d.group_location[group_name], contact[0], s["reason"],
            s["closing_note"], s["csat"], None, None if channel == "email" else f"demo-{cid}",
            dt(created), dt(s["updated"]), dt(s["boomerang"]), dt(s["claimed_at"]), dt(s["pending_since"]),
            dt(s["resolved_at"]), dt(s["closed_at"]), dt(created), dt(s["first_response_at"]), dt(last_inbound),
            dt(s["last_outbound"]), policy.name if policy else None, sla["state"], dt(sla["first_response_due"]),
            dt(sla["next_response_due"]), dt(sla["resolution_due"]), dt(sla["next_check"]), sla["paused"], 1,
        ))


def _moment(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _epoch(at: datetime | None) -> int | None:
    return None if at is None else int(at.timestamp())


def _sla(policy, calendar, s, created, last_inbound, now, warning_share) -> dict:
    """The SLA columns and the marks reached by `now`, computed by the SLA core
    (services/sla/core.py) from the simulated conversation. The marks, and their events,
    are those the every-minute sweep would have recorded on the way: each level at the
    moment it was reached."""
    out = {"state": "none", "first_response_due": None, "next_response_due": None, "resolution_due": None,
           "next_check": None, "marks": [], "paused": 0}
    if policy is None:
        return out
    waiting = s["last_outbound"] is not None and last_inbound > s["last_outbound"]
    facts = SimpleNamespace(
        status=s["status"], created_at=_moment(created), updated_at=_moment(s["updated"]),
        first_inbound_at=_moment(created), first_response_at=_moment(s["first_response_at"]),
        last_inbound_at=_moment(last_inbound), last_outbound_at=_moment(s["last_outbound"]),
        resolved_at=_moment(s["resolved_at"]), closed_at=_moment(s["closed_at"]),
        pending_since=_moment(s["pending_since"]), next_response_due=None,
        # One inbound message per cycle in the simulation: the cycle starts at the last one.
        cycle_start=_moment(last_inbound) if waiting else None)
    trail = [(kind, _moment(at), {}) for since, end in s["pauses"]
             for kind, at in (("pending", since), ("reopened", end))]
    if s["status"] == "pending":
        trail.append(("pending", _moment(s["pending_since"]), {}))
    at_now = _moment(now)
    targets, values = compute(facts, policy, calendar, warning_share, trail, at_now)
    stop = facts.resolved_at or facts.closed_at or facts.updated_at
    have: set[tuple[str, str]] = set()
    for target in targets:
        if target.due is None:
            continue
        if target.running:
            end = at_now
        elif target.name == "first_response" and facts.first_response_at is not None:
            end = facts.first_response_at
        else:
            end = stop
        if target.warn_at is not None and end >= target.warn_at:
            have.add((target.name, "warning"))
            out["marks"].append((target.name, "warning", _epoch(target.warn_at), _epoch(target.due)))
        if target.late or (target.running and at_now >= target.due):
            have.add((target.name, "breached"))
            out["marks"].append((target.name, "breached", _epoch(target.due), _epoch(target.due)))
    state, next_check, _ = assess(targets, have, at_now, sweeping=True)
    out.update(state=state, next_check=_epoch(next_check), paused=values["sla_paused_s"],
               first_response_due=_epoch(values["first_response_due"]),
               next_response_due=_epoch(values["next_response_due"]),
               resolution_due=_epoch(values["resolution_due"]))
    return out
