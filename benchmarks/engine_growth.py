"""One point of the engine's growth table (issue 20): the full tick at a smaller size.

``benchmarks.engine`` runs this module in a subprocess per size (Django is set up once per
process, on one database): it makes its own database (BENCH_DATABASE_URL's name +
``_engine_growth``), loads ``--practices`` practices of ``--per-practice`` patients with
``benchmarks.generate`` (the same generator, seed and shape as the main run: only the number
of practices differs), and times the full tick exactly as the main run's "one group of every
practice" measure does: a fresh spawned process on freshly generated data
(``benchmarks.engine.fanned_out_tick``), with that process's peak RSS, ``GROWTH_RUNS`` times,
each on a fresh copy of the data (the fastest counts). The database is dropped afterwards.

    uv run python -m benchmarks.engine_growth --practices 50 --per-practice 5000 --out F
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import database_url_for, recreate_database, setup_django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--practices", type=int, required=True)
    parser.add_argument("--per-practice", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    url = database_url_for("engine_growth")
    recreate_database(url)
    setup_django(url)
    from dj_database_url import parse
    from django.db import connection

    from benchmarks.engine import _drop_database, growth_tick_runs
    from benchmarks.generate import generate

    generated = generate(practices=args.practices, patients_per_practice=args.per_practice)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    connection.close()  # the tick runs in its own process, on its own connection
    try:
        tick = growth_tick_runs(url, parse(url)["NAME"])
    finally:
        _drop_database(url)
    point = {"patients": generated.patients, "practices": generated.practices, **tick}
    print("growth point", point, flush=True)
    Path(args.out).write_text(json.dumps(point))


if __name__ == "__main__":
    main()
