"""The nightly-export job: yesterday's reports (configured timezone) as CSV and JSON,
every file 0640, the day directory complete or absent, a second run changes nothing."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from datetime import datetime

import pytest
from sqlalchemy.orm import Session

from deskctl.config import load_settings
from deskctl.jobs import nightly_export
from tests.cli.test_reports import SPEC_COLUMNS, build_desk

FILES = sorted(f"{kind}.{ext}" for kind in ("volume", "sla", "agents", "tags", "csat", "conversations")
               for ext in ("csv", "json"))


@pytest.fixture
def export_desk(seeded, tmp_path):
    seeded.ids = build_desk(seeded)
    return seeded


def settings_for(tmp_path, extra=""):
    config = tmp_path / "export.yaml"
    config.write_text(f"export_dir: {tmp_path / 'exports'}\n{extra}")
    return load_settings(str(config))


def run_job(desk, settings, now: str) -> dict:
    with Session(desk.engine) as session:
        return nightly_export.run(session, now=datetime.fromisoformat(now), settings=settings)


def snapshot(directory):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns, stat.S_IMODE(p.stat().st_mode))
            for p in sorted(directory.iterdir())}


def test_writes_yesterdays_reports_as_csv_and_json(export_desk, tmp_path):
    settings = settings_for(tmp_path)
    before = export_desk.dump()
    counts = run_job(export_desk, settings, "2026-11-22T02:00:00+00:00")
    assert export_desk.dump() == before  # read-only
    day = tmp_path / "exports" / "2026-11-21"
    assert counts == {"day": "2026-11-21", "written": 1, "skipped": 0, "files": 12, "volume": 1, "sla": 1,
                      "agents": 3, "tags": 1, "csat": 1, "conversations": 1}
    assert sorted(p.name for p in day.iterdir()) == FILES
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["2026-11-21"]  # no temporary left
    for path in day.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(day.stat().st_mode) == 0o750

    def load(kind):
        rows = json.loads((day / f"{kind}.json").read_text())
        table = list(csv.reader(io.StringIO((day / f"{kind}.csv").read_text())))
        key = "id" if kind == "conversations" else nightly_export.EXPORT_BY[kind]
        assert table[0] == [key, *SPEC_COLUMNS[kind]]
        assert all(list(r) == table[0] for r in rows) and len(table) == len(rows) + 1
        return rows, table[1:]

    rows, table = load("volume")
    assert rows == [{"day": "2026-11-21", "created": 1, "resolved": 0, "closed": 1, "reopened": 0, "backlog_end": 4}]
    assert table == [["2026-11-21", "1", "0", "1", "0", "4"]]
    rows, table = load("sla")
    assert rows == [{"day": "2026-11-21", "conversations": 1, "first_response_met": 1,
                     "first_response_breached": 0, "first_response_pct": 100.0, "resolution_met": 0,
                     "resolution_breached": 0, "resolution_pct": None, "median_first_response_s": 900,
                     "p90_first_response_s": 900}]
    assert table == [["2026-11-21", "1", "1", "0", "100.0", "0", "0", "", "900", "900"]]
    rows, _ = load("agents")
    assert [[r[c] for c in r] for r in rows] == [
        ["alice", 0, 0, 0, 0, 0, 1, 799200, 0, 0, 0],
        ["bob", 1, 0, 0, 1, 0, 0, None, 0, 0, 0],
        ["carol", 1, 0, 0, 0, 0, 0, None, 0, 0, 0],
    ]
    rows, table = load("tags")
    assert rows == [{"tag": "billing-q", "conversations": 1, "median_handle_s": 799200, "mean_handle_s": 799200}]
    rows, table = load("csat")
    assert rows == [{"day": "2026-11-21", "rated": 1, "mean_csat": 1.0, "pct_4_or_5": 0.0}]
    rows, table = load("conversations")
    assert [r["id"] for r in rows] == [export_desk.ids["c7"]]
    assert rows[0]["handle_s"] == 799200 and rows[0]["sla_breached"] == ["resolution"]
    assert table[0][9:12] == ["2026-11-12T09:00:00+00:00", "1800", "799200"]


def test_second_run_for_the_same_day_changes_nothing(export_desk, tmp_path):
    settings = settings_for(tmp_path)
    run_job(export_desk, settings, "2026-11-22T02:00:00+00:00")
    day = tmp_path / "exports" / "2026-11-21"
    first = snapshot(day)
    counts = run_job(export_desk, settings, "2026-11-22T05:00:00+00:00")
    assert counts == {"day": "2026-11-21", "written": 0, "skipped": 1, "files": 0}
    assert snapshot(day) == first
    # The next night writes the next day beside it.
    assert run_job(export_desk, settings, "2026-11-23T02:00:00+00:00")["written"] == 1
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["2026-11-21", "2026-11-22"]


def test_a_failure_leaves_no_day_directory_and_the_next_run_writes_it(export_desk, tmp_path, monkeypatch):
    settings = settings_for(tmp_path, "jobs:\n  nightly-export: {cron: '0 2 * * *', reports: [volume, tags]}\n")
    from deskctl.services.reports import kinds as reports
    real = reports.run_report

    def failing(session, kind, **kwargs):
        if kind == "tags":
            raise RuntimeError("disk on fire")
        return real(session, kind, **kwargs)

    monkeypatch.setattr(reports, "run_report", failing)
    with pytest.raises(RuntimeError):
        run_job(export_desk, settings, "2026-11-22T02:00:00+00:00")
    assert list((tmp_path / "exports").iterdir()) == []
    monkeypatch.setattr(reports, "run_report", real)
    counts = run_job(export_desk, settings, "2026-11-22T02:00:00+00:00")
    assert counts["written"] == 1 and counts["files"] == 6
    day = tmp_path / "exports" / "2026-11-21"
    assert sorted(p.name for p in day.iterdir()) == sorted(
        f"{k}.{e}" for k in ("volume", "tags", "conversations") for e in ("csv", "json"))


def test_stale_temporary_directory_is_cleared(export_desk, tmp_path):
    settings = settings_for(tmp_path)
    stale = tmp_path / "exports" / ".2026-11-21.tmp-crashed"
    stale.mkdir(parents=True)
    (stale / "volume.csv").write_text("half")
    assert run_job(export_desk, settings, "2026-11-22T02:00:00+00:00")["written"] == 1
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["2026-11-21"]


def test_yesterday_is_in_the_configured_timezone(export_desk, tmp_path):
    settings = settings_for(tmp_path, "timezone: Pacific/Auckland\n")
    # 2026-11-21 13:30 UTC is 02:30 on the 22nd in Auckland (UTC+13): yesterday is the 21st
    # local, i.e. 2026-11-20 11:00 UTC to 2026-11-21 11:00 UTC.
    counts = run_job(export_desk, settings, "2026-11-21T13:30:00+00:00")
    assert counts["day"] == "2026-11-21"
    rows = json.loads((tmp_path / "exports" / "2026-11-21" / "volume.json").read_text())
    # C8 (created 21st 10:00 UTC) falls in it; C5 (20th 09:00 UTC) does not.
    assert rows == [{"day": "2026-11-21", "created": 1, "resolved": 0, "closed": 0, "reopened": 0,
                     "backlog_end": 5}]
    assert os.access(tmp_path / "exports" / "2026-11-21" / "volume.json", os.R_OK)


def test_a_file_at_the_day_path_fails_the_run_and_is_never_recorded_done(export_desk, tmp_path):
    """Issue 14 #9: a file named like the day was reported `ok, skipped: 1`, so that day was
    never written. The run fails with the reason; once the path is cleared the day is written."""
    config = tmp_path / "export-cli.yaml"
    config.write_text(f"export_dir: {tmp_path / 'exports'}\nclock: {{override: true}}\n")
    env = {"DESKCTL_CONFIG": str(config)}
    day = tmp_path / "exports" / "2026-11-21"
    day.parent.mkdir()
    day.write_text("not an export")
    result = export_desk.run("jobs", "run", "nightly-export", "--now", "2026-11-22T02:00:00+00:00", env=env,
                             fmt="json")
    assert result.exit_code == 4, result
    [record] = result.json()
    assert record["outcome"] == "failed" and "is a file, not a complete export" in record["error"]
    assert str(day) in result.stderr
    [row] = export_desk.rows("SELECT outcome, error FROM job_runs WHERE job = 'nightly-export'")
    assert row["outcome"] == "failed" and str(day) in row["error"]
    assert day.read_text() == "not an export"  # left for the operator to look at
    day.unlink()
    [again] = export_desk.json("jobs", "run", "nightly-export", "--now", "2026-11-22T03:00:00+00:00", env=env)
    assert again["outcome"] == "ok" and again["counts"]["written"] == 1
    assert sorted(p.name for p in day.iterdir()) == FILES


def test_an_incomplete_day_directory_fails_the_run(export_desk, tmp_path):
    from deskctl.errors import Conflict

    settings = settings_for(tmp_path)
    day = tmp_path / "exports" / "2026-11-21"
    day.mkdir(parents=True)
    (day / "volume.csv").write_text("half")
    with pytest.raises(Conflict) as raised:
        run_job(export_desk, settings, "2026-11-22T02:00:00+00:00")
    assert "not a complete export" in str(raised.value) and "volume.json" in str(raised.value)
    assert "volume.csv," not in str(raised.value)  # present: not listed as missing
    assert sorted(p.name for p in day.iterdir()) == ["volume.csv"]
    # A symlink to a complete export is not one either: the day must be a real directory.
    day.rename(tmp_path / "half")
    run_job(export_desk, settings, "2026-11-22T02:00:00+00:00")
    day.rename(tmp_path / "complete")
    day.symlink_to(tmp_path / "complete")
    with pytest.raises(Conflict, match="symlink"):
        run_job(export_desk, settings, "2026-11-22T02:00:00+00:00")
