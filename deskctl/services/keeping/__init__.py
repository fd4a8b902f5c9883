"""Keeping: erasure, retention, backups, integrity checks."""
