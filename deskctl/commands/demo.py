"""`deskctl demo`: fill the database with a realistic sample desk."""

from __future__ import annotations

import time

import click

from deskctl import demo as service
from deskctl.commands._options import emit, output_options
from deskctl.output import Column, notice
from deskctl.term import Progress


def _columns():
    return [Column("table"), Column("rows", "int")]


@click.command()
@click.option("--conversations", "-n", type=click.IntRange(min=0), default=1000, show_default=True, metavar="N",
              help="How many conversations to generate (over the last 30 days).")
@click.option("--seed", type=int, default=42, show_default=True, metavar="S",
              help="Random seed: the same seed and DESKCTL_NOW (on a desk with clock.override) give the "
                   "same desk.")
@click.option("--force", is_flag=True,
              help="Add demo data to a database that already has conversations (needs an admin actor "
                   "when the desk has one).")
@output_options
@click.pass_obj
def demo(app, conversations, seed, force):
    """Fill the database with sample data: locations, groups, 28 users (among them `admin` and
    `alice`, an agent in billing), contacts with VIPs, and N conversations over the last 30 days
    with messages, notes, transfers, pendings, boomerangs, closings, CSAT and the audit trail.

    Refuses (exit 4) a database that already has conversations unless --force. Dates are
    relative to the real clock; DESKCTL_NOW moves them only where config has `clock:
    {override: true}`."""

    app.allow_new_database()
    started = time.perf_counter()
    handle = app.actor_handle if force else None
    with Progress("conversations") as progress, app.transaction() as session:
        counts = service.build(session, conversations=conversations, seed=seed, now=app.now(),
                               settings=app.settings, actor_handle=handle, force=force, progress=progress)
    elapsed = time.perf_counter() - started
    emit(app, [{"table": name, "rows": rows} for name, rows in counts.items()], _columns(), id_key="rows")
    notice(f"demo desk: {counts['conversations']} conversations, {counts['messages']} messages, "
           f"{counts['events']} events in {elapsed:.1f}s (seed {seed})")
