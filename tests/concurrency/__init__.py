"""Races between separate processes on one database."""
