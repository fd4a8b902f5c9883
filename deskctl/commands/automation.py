"""`deskctl automation list|test` (SPEC §11): the rules of `automations:`, and a dry run
of them on a message."""

from __future__ import annotations

import click

from deskctl.commands._options import emit, output_options


def _list_columns():
    from deskctl.output import Column

    return [Column("position", "int"), Column("name"), Column("on", "list"), Column("if"), Column("then"),
            Column("stop", "bool")]


def _test_columns():
    from deskctl.output import Column

    return [Column("input"), Column("id", "int"), Column("action"), Column("rule"), Column("on", "list"),
            Column("changes")]


@click.group()
def automation():
    """Automations (the `automations:` rules of the configuration): list them, or see
    what they would do with a message."""


@automation.command("list")
@output_options
@click.pass_obj
def list_(app):
    """The rules in the order they run, checked against the database (an unknown group,
    user or team template exits 78 naming the rule)."""
    from deskctl.output import notice
    from deskctl.services.automations import load_directory, rule_record

    settings = app.settings
    with app.read() as session:
        load_directory(session, settings)
    if not settings.automations:
        notice("no automations configured (automations: in the configuration)")
    emit(app, [rule_record(rule) for rule in settings.automations], _list_columns())


@automation.command("test")
@click.option("--mail", "mail", metavar="FILE", type=click.Path(allow_dash=True, dir_okay=False),
              help="One RFC 5322 message (`-`: stdin).")
@click.option("--jsonl", "jsonl", metavar="FILE", type=click.Path(allow_dash=True, dir_okay=False),
              help="JSON lines (SPEC §7), as `ingest jsonl` reads them.")
@output_options
@click.pass_obj
def test(app, mail, jsonl):
    """Dry run: ingest the input in a transaction that is rolled back and print each
    rule that would fire (conversation, rule, event, changes). Nothing is stored or sent.
    Exit 65 when an input would be quarantined."""
    import os

    from deskctl.errors import DataError, UsageError
    from deskctl.output import notice, warn
    from deskctl.services.automations import FIRINGS
    from deskctl.services.inbound import intake

    if (mail is None) == (jsonl is None):
        raise UsageError("give exactly one of --mail FILE or --jsonl FILE")
    path = mail or jsonl
    if path != "-" and not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    settings = app.settings

    def no_write(_settings, data: bytes) -> str:  # attachments are not written either
        import hashlib

        return hashlib.sha256(data).hexdigest()

    stream = click.open_file(path, "rb")
    try:
        with app.transaction(dry_run=True) as session:
            session.info[FIRINGS] = []
            now = app.now()
            if mail is not None:
                from deskctl.services.inbound import email as ingest_email

                results = ingest_email.ingest_batch(session, [(intake.read_one(stream, settings), None)], now=now,
                                                    settings=settings, store_attachment=no_write, hold=False)
                inputs = {r["id"]: (r["message_id"], r["action"]) for r in results if r["id"] is not None}
            else:
                from deskctl.services.inbound import jsonl as ingest_jsonl

                results = ingest_jsonl.ingest_batch(session, list(intake.jsonl_lines(stream, settings)), now=now,
                                                    settings=settings, hold=False, store_attachment=no_write)
                inputs = {}
                for r in results:
                    if r["id"] is not None:
                        inputs[r["id"]] = (f"line {r['line']}", r["action"])
            firings = list(session.info[FIRINGS])
    finally:
        if path != "-":
            stream.close()
    bad = [r for r in results if r["action"] == "quarantined"]
    for r in bad:
        warn(f"{r.get('message_id') or 'line ' + str(r.get('line'))}: would be quarantined: {r['reason']}")
    records = [{"input": inputs.get(f["id"], (None, None))[0], "id": f["id"],
                "action": inputs.get(f["id"], (None, None))[1], "rule": f["rule"], "on": f["on"],
                "changes": f["changes"]} for f in firings]
    if not records:
        notice("no rule would fire")
    emit(app, records, _test_columns())
    if bad:
        raise DataError(f"{len(bad)} input(s) would be quarantined (nothing was stored)")
