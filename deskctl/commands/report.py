"""`deskctl report KIND`: aggregated statistics (SPEC §6), in every output format."""

from __future__ import annotations

import sys

import click

from deskctl import term
from deskctl.commands._options import (
    FILTER_PARAMS,
    build_filter,
    date_bound_option,
    emit,
    filter_options,
    output_options,
)
from deskctl.errors import UsageError
from deskctl.output import Column, notice, warn
from deskctl.services.reports import kinds as reports
from deskctl.timeparse import humanize_seconds
from deskctl.vocab import REPORT_BY, REPORT_KINDS

_COLUMN_KINDS = {"int": "int", "float": "float", "duration": "duration", "str": "str", "date": "str",
                 "datetime": "datetime", "list": "list"}
_BLOCKS = " ▏▎▍▌▋▊▉█"
CHART_WIDTH = 40


class ReportCommand(click.Command):
    """`report KIND --help` explains that kind; `report --help` explains them all."""

    def parse_args(self, ctx, args):
        ctx.meta["report_kind"] = next((a for a in args if a in REPORT_KINDS), None)
        return super().parse_args(ctx, args)

    def format_epilog(self, ctx, formatter):
        kind = ctx.meta.get("report_kind")
        for name in [kind] if kind else REPORT_KINDS:
            key = "id" if name == "conversations" else f"--by key (default {reports.DEFAULT_BY[name]})"
            columns = ", ".join(c.name for c in reports.COLUMNS[name])
            with formatter.section(f"report {name}"):
                formatter.write_text(f"Columns: {key}, {columns}.")
                formatter.write_text(reports.DEFINITIONS[name])
        with formatter.section("Definitions"):
            formatter.write_text(
                "handle_s: seconds from a conversation's creation to its last resolution or closing. "
                "first_response_s: seconds from its first inbound message to its first reply. "
                "Medians and p90 interpolate (percentile_cont). pct values are 0-100 with one decimal. "
                "Periods are [--since, --until) in the configured timezone; day/week/month keys are the "
                "first day of each period (weeks start on Monday); default: the last 7 days. Machine "
                "formats give integer seconds and ISO dates; tables humanise durations.")
        super().format_epilog(ctx, formatter)


@click.command(cls=ReportCommand)
@click.argument("kind", type=click.Choice(REPORT_KINDS))
@click.option("--since", metavar="WHEN", help="Start of the period: a date (local midnight), a date-time, "
                                              "or a duration ago (30d). Default: 6 days before today, 00:00.")
@click.option("--until", metavar="WHEN", help="End of the period, exclusive (same forms). Default: now.")
@click.option("--by", "by", type=click.Choice(REPORT_BY), default=None,
              help="Key of the rows (default: day; tags: tag; backlog: group).")
@filter_options
@click.option("--chart", "chart", metavar="COLUMN",
              help="With --format table on a terminal: a bar chart of this numeric column.")
@output_options
@click.pass_obj
def report(app, kind, since, until, by, chart, **params):
    """Aggregated statistics over a period: one report KIND (SPEC §6, each below).

    The rows have the key column (--by, or id for conversations) then the columns of the
    report, in a fixed order. The list filters restrict the conversations counted."""

    now = app.now()
    since_at, until_at = date_bound_option(app, since, "--since"), date_bound_option(app, until, "--until")
    flt = build_filter(app, {name: params.get(name) for name in FILTER_PARAMS})
    fmt = app.output_format()
    chart_on = False
    if chart is not None:
        numeric = [c.name for c in reports.COLUMNS[kind] if c.kind in ("int", "float", "duration")]
        if chart not in numeric:
            raise UsageError(f"invalid --chart column {chart!r} for report {kind} "
                             f"(choose from {', '.join(numeric)})")
        chart_on = fmt == "table" and term.is_tty(sys.stdout)
        if not chart_on:
            warn("--chart ignored: a chart is drawn only with --format table on a terminal")
    with app.read() as session:
        actor_id = app.actor(session).id if flt.mine or flt.watching else None
        columns, rows = reports.run_report(session, kind, since=since_at, until=until_at, by=by,
                                           settings=app.settings, now=now, flt=flt, actor_id=actor_id)
        out_columns = _output_columns(columns, fmt)
        if chart_on:
            rows = list(rows)
        count = emit(app, rows, out_columns, id_key=columns[0].name)
    if chart_on and count:
        _draw_chart(rows, columns[0].name, next(c for c in columns if c.name == chart))
    if count == 0:
        notice("no conversations matched")


def _output_columns(columns, fmt):
    out = []
    for col in columns:
        if fmt == "table" and col.name == "mean_csat":  # two decimals, as in machine formats
            out.append(Column(col.name, "str", get=lambda r, n=col.name: "" if r[n] is None else f"{r[n]:.2f}"))
        else:
            out.append(Column(col.name, _COLUMN_KINDS[col.kind]))
    return out


def _bar(value: float, top: float) -> str:
    if top <= 0 or value <= 0:
        return ""
    eighths = round(value / top * CHART_WIDTH * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + (_BLOCKS[part] if part else "")


def _draw_chart(rows, key: str, column) -> None:
    values = [(str(r[key] if r[key] is not None else "-"), r[column.name]) for r in rows]
    top = max((v for _, v in values if v is not None), default=0)
    width = max(len(k) for k, _ in values)
    click.echo(f"\n{column.name}")
    for label, value in values:
        shown = "" if value is None else (humanize_seconds(value) if column.kind == "duration" else
                                          (f"{value:.1f}" if isinstance(value, float) else str(value)))
        click.echo(f"{label.ljust(width)} │{_bar(value or 0, top)} {shown}".rstrip())
