"""Reports (SPEC §6)."""
