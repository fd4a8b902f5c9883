"""Read models: conversation records, the thread, the audit trail, search."""
