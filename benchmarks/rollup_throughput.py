"""The roll-up's backfill throughput on its own, at any size (issue 20; target 20,000 rows/s).

Writes the report benchmark's campaign (``benchmarks.report.populate``: messages, events and
enrollments set-wise, all pending), then times ``reports.rollup.rollups_refresh`` counting
them, and prints rows/s with the machine's load average (the machine may be shared).

    uv run python -m benchmarks.rollup_throughput [--messages 200000]

Its database is BENCH_DATABASE_URL's name + ``_rollup`` (dropped and created).
"""

from __future__ import annotations

import argparse
import os

from benchmarks.common import database_url_for, recreate_database, settle, setup_django, timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="time the roll-up on tables without statistics (as make bench-full's report does)",
    )
    args = parser.parse_args()
    url = database_url_for("rollup")
    recreate_database(url)
    setup_django(url)
    from benchmarks.report import populate, vacuum
    from reports.rollup import rollups_refresh

    populate_s, _ = timed(populate, args.messages)
    if not args.no_analyze:
        vacuum()
    print(f"settled in {settle(url):.1f} s", flush=True)  # the data on disk before the roll-up
    print(f"populated in {populate_s:.1f} s; load average {os.getloadavg()}", flush=True)
    seconds, counted = timed(rollups_refresh)
    print(
        f"rolled up {counted:,} rows in {seconds:.2f} s: {counted / seconds:,.0f} rows/s; "
        f"load average {os.getloadavg()}",
        flush=True,
    )


if __name__ == "__main__":
    main()
