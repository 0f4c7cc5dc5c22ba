"""Benchmark: POST /api/v1/patients:bulk into PostgreSQL through gunicorn.

Creates a fresh database, one practice and its API key, then sends batches of 5,000
realistic patients over HTTP: first creating them (one client, then two clients in
parallel), then re-sending them unchanged, then with changes. Target: ≥ 3,000 patients/s.

    uv run python -m benchmarks.bulk_patients [--size small|full]
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    Result,
    Section,
    cli,
    database_url_for,
    gunicorn,
    recreate_database,
    setup_django,
)

BATCH = 5000
FIRST = ["Ann", "Bob", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lu"]
LAST = ["Lee", "Patel", "Garcia", "Smith", "Nguyen", "Kim", "Brown", "Lopez", "Khan", "Cole"]
PROVIDERS = ["Dr. Adams", "Dr. Baker", "Dr. Chen", "Dr. Diaz"]
TAGS = ["newsletter", "vip", "pi", "wellness", "not qualified", "moved"]


def patient(n: int, rng: random.Random, variant: int = 0) -> dict:
    birth = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(27_000))
    return {
        "external_id": f"EMR-{n:07d}",
        "first_name": FIRST[n % len(FIRST)],
        "last_name": LAST[(n // 7) % len(LAST)] + ("-B" if variant else ""),
        "birth_date": birth.isoformat(),
        "sex": "FM"[n % 2],
        "phone": f"(312) 555-{n % 10000:04d}" if n % 10 else f"+1773555{n % 10000:04d}",
        "email": f"patient{n}@example.test",
        "address": {
            "line1": f"{n} Main St",
            "city": "Chicago",
            "state": "IL",
            "postal_code": "60601",
        },
        "status": "active" if n % 9 else "inactive",
        "primary_provider": PROVIDERS[n % len(PROVIDERS)],
        "referral_source": "Google" if n % 3 else "Friend",
        "insurance_company": "Acme Health",
        "paid_total": f"{(n % 500) * 10}.00",
        "tags": rng.sample(TAGS, n % 3),
    }


def post(base: str, key: str, batch: list[dict]) -> dict:
    request = urllib.request.Request(
        f"{base}/api/v1/patients:bulk",
        data=json.dumps({"patients": batch}).encode(),
        headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


def run(base: str, key: str, batches: list[list[dict]], clients: int) -> tuple[float, dict]:
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda b: post(base, key, b), batches))
    elapsed = time.perf_counter() - started
    totals = {k: sum(r[k] for r in results) for k in ("created", "updated", "unchanged")}
    totals["errors"] = sum(len(r["errors"]) for r in results)
    return elapsed, totals


TARGET_PATIENTS_PER_SECOND = 3000
SIZES = {"small": 20_000, "full": 50_000}


def measure(n: int) -> list[dict]:
    url = database_url_for("sync")
    recreate_database(url)
    setup_django(url)
    from trackstat.services import practice_create

    rows = []
    rng = random.Random(7)
    with gunicorn(url, workers=2) as base:
        for clients in (1, 2):
            _, issued = practice_create(name=f"Bench {clients}", time_zone="America/Chicago")
            data = [patient(i, rng) for i in range(n)]
            batches = [data[i : i + BATCH] for i in range(0, n, BATCH)]
            for label, payload in [
                ("create", batches),
                ("re-send unchanged", batches),
                (
                    "update (name changed)",
                    [[{**p, "last_name": p["last_name"] + "-B"} for p in b] for b in batches],
                ),
            ]:
                elapsed, totals = run(base, issued.secret, payload, clients)
                rows.append(
                    {
                        "case": f"{label}, {clients} client{'s' if clients > 1 else ''}",
                        "clients": clients,
                        "patients": n,
                        "seconds": round(elapsed, 2),
                        "per_second": round(n / elapsed),
                        **totals,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    return rows


def bench(size: str) -> Section:
    n = SIZES[size]
    rows = measure(n)
    section = Section(title="Bulk patient sync: `POST /api/v1/patients:bulk` (5,000 per request)")
    section.lines += [
        "Through gunicorn (2 workers, DEBUG off) over HTTP into PostgreSQL; JSON encoding in the",
        f"client included. Target: ≥ {TARGET_PATIENTS_PER_SECOND:,} patients/s.",
        "",
        "| case | patients | seconds | patients/s | meets target |",
        "|---|---:|---:|---:|---|",
    ]
    for row in rows:
        meets = "yes" if row["per_second"] >= TARGET_PATIENTS_PER_SECOND else "no"
        section.lines.append(
            f"| {row['case']} | {row['patients']:,} | {row['seconds']} | "
            f"{row['per_second']:,} | {meets} |"
        )
    section.lines += [
        "",
        "One client sends its batches one after another, so only one of the two gunicorn",
        "workers (one core) is busy; two clients use both cores, as several practices' EMR",
        "connectors do.",
    ]
    for row in rows:
        if row["case"].startswith("create"):
            section.results.append(
                Result(
                    name=f"Bulk patient sync, create, {row['clients']} client(s)",
                    measured=f"{row['per_second']:,} patients/s",
                    target=f"≥ {TARGET_PATIENTS_PER_SECOND:,} patients/s",
                    meets=row["per_second"] >= TARGET_PATIENTS_PER_SECOND,
                )
            )
    return section


if __name__ == "__main__":
    cli(bench)
