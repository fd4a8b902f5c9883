"""Agent replies (`deskctl reply`) and the RFC 5322 messages they become.

A reply is always stored as an outbound message (it counts as the first or next
response for the SLA). On an email conversation it is also queued in the outbox as a
complete message: `[#ID]` in the subject, In-Reply-To/References pointing at the last
inbound message, the configured From, attachments. On another channel it is queued for
the channel's `delivery` connector (services.outbound.delivery) when one is configured,
else stored only. `via="email"` continues a chat/SMS/social request by email, in the
same conversation (SPEC §11).
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import tempfile
from collections.abc import Sequence
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path

from sqlalchemy import select

from deskctl.errors import Conflict, NotFound, UsageError
from deskctl.models import Attachment, Contact, Conversation, Message, Outbox
from deskctl.services.actor import Actor
from deskctl.services.addresses import check_address, is_address
from deskctl.services.conversations import permissions
from deskctl.services.inbound import messages
from deskctl.services.outbound import delivery, notifications, templates

_MSGID = re.compile(r"<([^<>\s]+)>")
# Enough ancestors to thread in every client without growing the header forever.
MAX_REFERENCES = 20


def sender_domain(settings) -> str:
    _, address = parseaddr(settings.smtp.sender)
    return address.rpartition("@")[2] or "deskctl.invalid"


def new_message_id(settings) -> str:
    """A fresh Message-ID for our From domain, without the angle brackets."""
    return make_msgid(domain=sender_domain(settings)).strip("<>")


def tagged_subject(conversation_id: int, subject: str | None, prefix: str) -> str:
    """`[#12] Re: Invoice question`: our tag once, one `Re:`, whatever the original had."""
    base = re.sub(rf"\s*\[#{conversation_id}\]\s*", " ", subject or "").strip()
    while re.match(r"(?i)^(re|aw|sv|fwd?)\s*:\s*", base):
        base = re.sub(r"(?i)^(re|aw|sv|fwd?)\s*:\s*", "", base, count=1)
    base = base or "(no subject)"
    return f"[#{conversation_id}] {prefix}{base}"


def build_email(settings, *, message_id: str, to: str, subject: str, text: str, now: datetime,
                dedupe_key: str, cc: Sequence[str] = (), bcc: Sequence[str] = (),
                in_reply_to: str | None = None, references: Sequence[str] = (),
                attachments: Sequence[tuple[str, bytes]] = (), automatic: bool | str = False) -> EmailMessage:
    """A complete message. Bcc stays in the stored copy: smtplib's send_message turns it
    into envelope recipients and strips the header before transmission."""
    msg = EmailMessage(policy=policy.default)
    msg["From"] = settings.smtp.sender
    msg["To"] = to
    if cc:
        msg["Cc"] = ", ".join(cc)
    if bcc:
        msg["Bcc"] = ", ".join(bcc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    # Receivers (and we, on a re-send after a crash) can recognise a duplicate.
    msg["X-Deskctl-Dedupe"] = dedupe_key
    if automatic:
        # RFC 3834: vacation responders must not answer transcripts and notifications
        # (auto-generated), nor our automatic replies (automatic="auto-replied").
        msg["Auto-Submitted"] = automatic if isinstance(automatic, str) else "auto-generated"
    msg.set_content(text if text.endswith("\n") else text + "\n")
    for filename, data in attachments:
        ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def to_bytes(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=policy.SMTP)


def attachment_path(settings, digest: str) -> Path:
    """Where the bytes with this sha256 are stored: attachments_dir/xx/<sha256>."""
    return Path(settings.attachments_dir) / digest[:2] / digest


def store_attachment(settings, data: bytes) -> str:
    """Write the bytes content-addressed under attachments_dir (sha256/xx/yy…), atomically
    and once; returns the sha256. A rolled-back reply can leave an unreferenced file:
    harmless, and shared with any later identical attachment."""
    digest = hashlib.sha256(data).hexdigest()
    target = attachment_path(settings, digest)
    if target.exists():
        return digest
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return digest


def _references_of(parent: Message) -> list[str]:
    """The parent's References (else its In-Reply-To) plus the parent itself."""
    chain = _MSGID.findall(parent.references or "")
    if not chain and parent.references:
        chain = [r.strip("<>") for r in parent.references.split()]
    if not chain and parent.in_reply_to:
        chain = _MSGID.findall(parent.in_reply_to) or [parent.in_reply_to.strip("<>")]
    chain.append(parent.external_id)
    seen: dict[str, None] = {}
    for ref in chain:
        if ref:
            seen.setdefault(ref, None)
    refs = list(seen)
    # Keep the thread root and the most recent ancestors (RFC 5322 3.6.4 allows trimming).
    return refs if len(refs) <= MAX_REFERENCES else [refs[0], *refs[-(MAX_REFERENCES - 1):]]


def last_inbound(session, conversation_id: int, channel: str) -> Message | None:
    """The latest message from the contact on `channel` that has an external id (what a
    reply answers)."""
    return session.scalar(
        select(Message).where(Message.conversation_id == conversation_id, Message.direction == "inbound",
                              Message.channel == channel, Message.external_id.is_not(None))
        .order_by(Message.created_at.desc(), Message.id.desc()).limit(1))


def last_inbound_email(session, conversation_id: int) -> Message | None:
    return last_inbound(session, conversation_id, "email")


def reply(session, actor: Actor, conversation_id: int, *, now: datetime, settings, text: str | None = None,
          template: str | None = None, cc: Sequence[str] = (), bcc: Sequence[str] = (),
          attachments: Sequence[tuple[str, bytes]] = (), via: str | None = None) -> dict:
    """Store an agent's reply and queue it for delivery: by email on an email conversation
    or with via="email", else through the channel's `delivery` connector when configured
    (else it is stored only: record["queued"] is False). `attachments` are (filename,
    bytes) pairs. Returns the reply record."""
    if via not in (None, "email"):
        raise UsageError(f"a reply can be sent by email only, not by {via}", option="via")
    if (text is None) == (template is None):
        raise UsageError("give the reply text or a template (exactly one)", option="template")
    cc = [check_address(a, "cc", option="cc") for a in cc]
    bcc = [check_address(a, "bcc", option="bcc") for a in bcc]
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound(f"conversation not found: #{conversation_id}")
    if permissions.forbidden_ids(session, actor, [conversation_id], settings):
        raise permissions.forbidden_error(actor)
    if conversation.status == "closed":
        raise Conflict(f"#{conversation_id} is closed: reopen it first, or start a new conversation")
    if template is not None:
        body = templates.get(session, actor, template).body
        text = templates.render(body, templates.field_values(session, conversation, actor.id))
    if not text or not text.strip():
        raise UsageError("the reply is empty")
    via_email = via == "email" and conversation.channel != "email"
    is_email = conversation.channel == "email" or via_email
    if (cc or bcc) and not is_email:
        raise UsageError(f"cc and bcc apply to email only (#{conversation_id} is {conversation.channel}; "
                         "answer by email instead to copy someone)", option=("cc", "bcc", "via"))
    contact = session.get(Contact, conversation.contact_id) if conversation.contact_id else None
    to_address = None
    if via_email and not (contact and contact.email):
        # Nothing to send to: the address is what is missing (3), not the conversation's state.
        if contact is None:
            raise NotFound(f"cannot email #{conversation_id}: it has no contact, hence no email address "
                           "(attach a contact with one first)", option="via")
        raise NotFound(f"cannot email #{conversation_id}: its contact #{contact.id} has no email address "
                       f"(give contact #{contact.id} one first)", option="via")
    if is_email:
        to_address = contact.email if contact else None
        if not to_address:
            who = f"contact #{contact.id}" if contact else "it has no contact, which"
            raise Conflict(f"cannot email #{conversation_id}: {who} has no email address "
                           "(attach a contact with one: deskctl attach)")
        assert contact is not None  # the address came from it
        if not is_address(to_address):  # stored before addresses were checked
            raise Conflict(f"cannot email #{conversation_id}: contact #{contact.id} has an invalid address "
                           f"{to_address!r} (fix contact #{contact.id}'s email address)")

    subject = tagged_subject(conversation_id, conversation.subject, "Re: ")
    external_id = in_reply_to = None
    references: list[str] = []
    if is_email:
        external_id = new_message_id(settings)
        parent = last_inbound_email(session, conversation_id)
        if parent is not None:
            in_reply_to = parent.external_id
            references = _references_of(parent)
    message = messages.add_outbound(
        session, conversation, now=now, settings=settings, author_user_id=actor.id, actor=actor.handle,
        text=text, external_id=external_id, subject=subject, in_reply_to=in_reply_to,
        references=" ".join(f"<{r}>" for r in references) or None, cc=cc, bcc=bcc)
    if via_email:
        # An email in a chat conversation: stored as email, its Message-ID is what the
        # contact's answer names in In-Reply-To, and email threading looks up email ids.
        message.channel = "email"
        session.flush()
    stored = []
    for filename, data in attachments:
        digest = store_attachment(settings, data)
        ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        stored.append(Attachment(message_id=message.id, filename=filename, content_type=ctype, size=len(data),
                                 sha256=digest))
    session.add_all(stored)
    outbox_id = None
    if is_email:
        assert contact is not None and to_address is not None and external_id is not None  # set above
        key = f"email:{external_id}"
        raw = to_bytes(build_email(
            settings, message_id=external_id, to=contact_address(contact), subject=subject, text=text, now=now,
            dedupe_key=key, cc=cc, bcc=bcc, in_reply_to=in_reply_to, references=references,
            attachments=attachments))
        notifications.enqueue(session, kind="email", dedupe_key=key, recipient=to_address, subject=subject,
                              body=text, now=now, conversation_id=conversation_id, raw=raw)
        outbox_id = session.scalar(select(Outbox.id).where(Outbox.dedupe_key == key))
    elif conversation.channel in settings.delivery:
        parent = last_inbound(session, conversation_id, conversation.channel)
        files = [{"name": a.filename, "path": os.path.abspath(attachment_path(settings, a.sha256)),
                  "content_type": a.content_type, "size": a.size} for a in stored]
        outbox_id = delivery.queue_message(session, conversation=conversation, message=message, contact=contact,
                                           files=files, in_reply_to=parent.external_id if parent else None,
                                           author=actor.handle, now=now)
        in_reply_to = parent.external_id if parent else None
        to_address = session.scalar(select(Outbox.recipient).where(Outbox.id == outbox_id)) or None
    session.flush()
    return {"id": conversation_id, "message_id": message.id, "channel": "email" if is_email else conversation.channel,
            "to": to_address, "cc": cc, "bcc": bcc, "subject": subject, "external_id": external_id,
            "in_reply_to": in_reply_to, "attachments": [a.filename for a in stored], "outbox_id": outbox_id,
            "queued": outbox_id is not None, "at": now}


def contact_address(contact: Contact) -> str:
    """`Léa Dubois <lea@example.fr>` (quoted and encoded as needed), else the bare address."""
    email = contact.email
    assert email is not None  # only contacts with an address are written to
    name = (contact.name or "").strip()
    if not name:
        return email
    local, _, domain = email.rpartition("@")
    try:
        return str(Address(display_name=name, username=local, domain=domain))
    except (ValueError, TypeError):
        return email
