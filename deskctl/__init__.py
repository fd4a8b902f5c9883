"""deskctl: a command-line help desk for shared customer-support inboxes."""

__version__ = "0.1.0"
