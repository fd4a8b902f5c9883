"""Conversations: the bulk engine and the verbs, selection, notes, watchers, routing, timers."""
