"""All mapped classes; importing this module registers every table on Base.metadata."""

from deskctl.models.contact import Contact
from deskctl.models.conversation import Conversation, ConversationTag, ReadMark, SlaMark, Watcher
from deskctl.models.directory import Group, GroupMember, Location, User
from deskctl.models.event import Event
from deskctl.models.job import JobLock, JobRun
from deskctl.models.message import Attachment, Message, MessageReference, Note, NoteVersion
from deskctl.models.outbox import Outbox
from deskctl.models.quarantine import Quarantine
from deskctl.models.template import Template

__all__ = [
    "Attachment", "Contact", "Conversation", "ConversationTag", "Event", "Group", "GroupMember",
    "JobLock", "JobRun", "Location", "Message", "MessageReference", "Note", "NoteVersion", "Outbox", "Quarantine",
    "ReadMark", "SlaMark", "Template", "User", "Watcher",
]
