"""`make bench`: run the benchmarks and write BENCHMARKS.md.

    uv run python benchmarks/run.py [--patients N]

Needs a PostgreSQL server (BENCH_DATABASE_URL, default a local ``trackstat_bench`` database,
dropped and created by each run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bulk_patients
from benchmarks.common import ROOT, machine_description

TARGET_PATIENTS_PER_SECOND = 3000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=20_000)
    args = parser.parse_args()
    command = f"make bench (benchmarks/run.py --patients {args.patients})"
    sys.argv = [sys.argv[0], "--patients", str(args.patients)]
    rows = bulk_patients.main()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "# Benchmarks",
        "",
        f"Command: `{command}` · commit {commit or 'unknown'} · "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine_description()}",
        "",
        "## Bulk patient sync: `POST /api/v1/patients:bulk` (5,000 per request)",
        "",
        "Through gunicorn (2 workers, DEBUG off) over HTTP into PostgreSQL; JSON encoding in the",
        f"client included. Target: ≥ {TARGET_PATIENTS_PER_SECOND:,} patients/s.",
        "",
        "| case | patients | seconds | patients/s | meets target |",
        "|---|---:|---:|---:|---|",
    ]
    for row in rows:
        meets = "yes" if row["per_second"] >= TARGET_PATIENTS_PER_SECOND else "no"
        lines.append(
            f"| {row['case']} | {row['patients']:,} | {row['seconds']} | "
            f"{row['per_second']:,} | {meets} |"
        )
    lines += [
        "",
        "One client sends its batches one after another, so only one of the two gunicorn",
        "workers (one core) is busy; two clients use both cores, as several practices' EMR",
        "connectors do.",
        "",
    ]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
