"""Arrange helpers for tests: a known directory and conversations inserted directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deskctl.models import Contact, Conversation, ConversationTag, Message, User, Watcher

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def seed_directory(desk) -> None:
    desk.ok("user", "add", "root", "--role", "admin", "--name", "Root Admin")
    for loc in ("paris", "lyon"):
        desk.ok("location", "add", loc)
    desk.ok("group", "add", "billing", "--location", "paris")
    desk.ok("group", "add", "support", "--location", "paris")
    desk.ok("group", "add", "sales", "--location", "lyon")
    desk.ok("user", "add", "carol", "--role", "supervisor", "--location", "paris", "--group", "billing",
            "--group", "support", "--email", "carol@desk.example")
    desk.ok("user", "add", "alice", "--location", "paris", "--group", "billing", "--email", "alice@desk.example",
            "--name", "Alice Martin")
    desk.ok("user", "add", "bob", "--location", "paris", "--group", "support", "--email", "bob@desk.example")
    desk.ok("user", "add", "dave", "--location", "lyon", "--group", "sales")
    with desk.session() as s:
        for user in s.query(User):
            user.availability = "available"


def make_contact(session, name="Léa Dubois", email="lea@example.fr", vip=False, now=T0) -> Contact:
    contact = Contact(name=name, email=email, vip=vip, attributes={}, created_at=now)
    session.add(contact)
    session.flush()
    return contact


def make_conversation(desk, *, subject="Invoice question", channel="email", status="new", priority="low",
                      assignee=None, group="billing", contact_email="lea@example.fr", tags=(),
                      watchers=(), created_at=T0, with_message=True, **fields) -> int:
    """Insert a conversation (and its first inbound message) directly; returns its id."""
    with desk.session() as s:
        from sqlalchemy import select

        from deskctl.models import Group

        contact = None
        if contact_email:
            contact = s.scalar(select(Contact).where(Contact.email == contact_email)) or make_contact(
                s, name=contact_email.split("@")[0].title(), email=contact_email)
        group_row = s.scalar(select(Group).where(Group.name == group)) if group else None
        assignee_id = s.scalar(select(User.id).where(User.handle == assignee)) if assignee else None
        conv = Conversation(
            subject=subject, channel=channel, status=status, priority=priority, assignee_id=assignee_id,
            group_id=group_row.id if group_row else None,
            location_id=group_row.location_id if group_row else None,
            contact_id=contact.id if contact else None, created_at=created_at, updated_at=created_at,
            first_inbound_at=created_at if with_message else None,
            last_inbound_at=created_at if with_message else None,
            claimed_at=created_at if assignee else None, **fields,
        )
        s.add(conv)
        s.flush()
        for tag in tags:
            s.add(ConversationTag(conversation_id=conv.id, tag=tag))
        for handle in watchers:
            uid = s.scalar(select(User.id).where(User.handle == handle))
            s.add(Watcher(conversation_id=conv.id, user_id=uid, created_at=created_at))
        if with_message:
            s.add(Message(conversation_id=conv.id, direction="inbound", author_contact_id=contact.id if contact
                          else None, channel=channel, subject=subject, text="Hello, I have a question.",
                          external_id=f"m{conv.id}@example.fr" if channel == "email" else None,
                          created_at=created_at, cc=[], bcc=[]))
        return conv.id


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def email_message(message_id: str, *, sender: str, subject: str, date: str, body: str,
                  in_reply_to: str | None = None, references: tuple[str, ...] = (),
                  attachment: bytes | None = None):
    """A customer's mail as an MTA would hand it over."""
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@desk.example"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}>"
    msg["Date"] = date
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    msg.set_content(body)
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="pdf", filename="facture.pdf")
    return msg


def ingest_mail(desk, tmp_path, msg, *args, name: str | None = None, fmt="json"):
    """`deskctl ingest email FILE` of `msg`, written to a file named after its Message-ID."""
    path = tmp_path / (name or f"{msg['Message-ID'].strip('<>').split('@')[0]}.eml")
    path.write_bytes(msg.as_bytes())
    return desk.run("ingest", "email", path, *args, fmt=fmt)
