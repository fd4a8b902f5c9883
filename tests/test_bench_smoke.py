"""The benchmark harness itself runs (at N=1000 on SQLite, one run of each measurement):
it prints the table and writes the JSON result. The benchmarks proper never run in tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_harness_runs_at_n_1000(tmp_path):
    out_dir = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--engine", "sqlite", "--n", "1000", "--repeat", "1",
         "--ingest-messages", "50", "--out-dir", str(out_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    header = next(line for line in proc.stdout.splitlines() if line.startswith("| operation"))
    assert [h.strip() for h in header.strip("|").split("|")] == [
        "operation", "N", "engine", "deskctl s", "baseline s", "ratio", "cpu ratio", "rows/s", "peak MB"]
    assert "| demo build " in proc.stdout and "| deskctl --help " in proc.stdout

    [path] = list(out_dir.glob("*.json"))
    report = json.loads(path.read_text())
    assert path.name == f"{report['timestamp']}-{report['commit']}.json"
    assert report["engine"] == "sqlite" and report["n"] == 1000 and report["repeat"] == 1
    results = {r["operation"]: r for r in report["results"]}
    assert results["demo build"]["deskctl_s"] > 0
    help_row = results["deskctl --help"]
    assert help_row["deskctl_s"] > 0 and help_row["baseline_s"] > 0
    assert abs(help_row["ratio"] - help_row["deskctl_s"] / help_row["baseline_s"]) < 0.02
    listed = results["list --format jsonl"]
    assert listed["rows"] == 1000 and listed["peak_mb"] > 0 and listed["rows_per_s"] > 0
    # every row is either measured or skipped with a note saying why
    for row in report["results"]:
        assert row["deskctl_s"] is not None or row["note"].startswith("skipped:"), row
    assert len(report["results"]) >= 10
