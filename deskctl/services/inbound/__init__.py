"""Inbound: what a message does when it arrives, from `new`, email or JSON lines."""
