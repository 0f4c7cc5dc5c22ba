"""Benchmark: web latency of the busiest pages under 20 concurrent signed-in users.

A fresh database holds one practice with 5,000 patients (through the sync service), a dozen
drip campaigns and a blast, and a campaign whose messages (one per patient, sent, most
delivered, some clicked, failed or opted out) are counted into the report roll-ups with
``reports.rollup.rollups_refresh()``. Twenty users, each with their own signed-in session,
request one page after another through gunicorn (DEBUG off), on three pages in turn: the drip
campaign list, the patient list and the campaign report.

Two load shapes per page:

- **users**: each user waits 0.5 to 1.5 s (1 s on average) between requests, as people and load
  tools such as locust do. This is "20 concurrent users"; the target (p95 < 150 ms) is
  judged on it.
- **saturation**: the same 20 users with no pause at all (20 requests always in flight):
  the most requests per second the server gives, and the latency when it is saturated.

    uv run python -m benchmarks.web [--size small|full]
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    Result,
    Section,
    cli,
    database_url_for,
    gunicorn,
    percentile,
    recreate_database,
    setup_django,
)
from benchmarks.send import EXITED_BACKENDS, cpu_snapshot

TARGET_MS = 150
USERS = 20
PATIENTS = 5_000
# gunicorn sync workers: requests are short and database-bound; 2 x cores + 1, gunicorn's
# own rule of thumb, keeps both cores busy while some workers wait for PostgreSQL.
WORKERS = 5
# Seconds each page is loaded, per load shape.
SIZES = {"small": 5, "full": 30}
THINK_SECONDS = (0.5, 1.5)
TAGS = ["newsletter", "vip", "pi", "wellness", "not qualified", "moved"]
PROVIDERS = ["Dr. Adams", "Dr. Baker", "Dr. Chen", "Dr. Diaz"]


def _drip_specs() -> list[dict]:
    sms = {"channel": "sms", "body": "Hi {{PatientFirstName}}, from {{PracticeName}}."}
    email = {
        "channel": "email",
        "subject": "News from {{PracticeName}}",
        "body": "<p>Hi {{PatientFirstName}}, see https://practice.test/news</p>",
        "delay": {"value": 3, "unit": "days"},
    }
    triggers = [
        {"type": "birthday", "offset_days": 0},
        {"type": "birthday", "offset_days": -7},
        {"type": "missed_appointment", "minutes_after": 30},
        {"type": "scheduled_appointment", "when": "days_before", "days": 1},
        {"type": "scheduled_appointment", "when": "days_before", "days": 3},
        {"type": "last_visit_checked_in", "when": "days_ago", "days": 90, "match": "at_least"},
        {"type": "last_visit_checked_in", "when": "days_ago", "days": 180, "match": "at_least"},
        {"type": "last_visit_checked_in", "when": "days_ago", "days": 365, "match": "at_least"},
        {"type": "birthday", "offset_days": 3},
        {"type": "missed_appointment", "minutes_after": 120},
    ]
    specs = []
    for n, trigger in enumerate(triggers):
        spec = {
            "name": f"Drip {n + 1}: {trigger['type'].replace('_', ' ')}",
            "kind": "drip",
            "enabled": n % 3 != 2,
            "trigger": trigger,
            "filters": {"status": "active"} if n % 2 else {"tags": {"include": ["vip"]}},
            "messages": [sms, email] if n % 2 else [sms],
        }
        if trigger["type"] not in ("missed_appointment",):
            spec["schedule"] = {"frequency": "daily", "time": "10:00"}
        specs.append(spec)
    return specs


def populate() -> dict:
    """The practice, its patients, campaigns and a reported campaign; returns the user ids
    and the URLs to load."""
    from django.db import connection
    from django.urls import reverse

    from campaigns.engine.enroll import campaigns_run_due
    from campaigns.engine.steps import steps_materialize
    from campaigns.language.spec import CampaignSerializer
    from campaigns.services import campaign_create
    from messaging.models import MessageStatus, OutboundMessage
    from messaging.outbox.status import messages_transition
    from patients.sync.patients import patients_upsert
    from reports.rollup import rollups_refresh
    from trackstat.models import Membership, Role, User
    from trackstat.services import practice_create

    rng = random.Random(8)
    practice, _ = practice_create(
        name="Web bench",
        time_zone="America/Chicago",
        sms_from="+13127770000",
        email_from="office@practice.test",
    )
    # Marketing email carries the practice's postal address: one is needed to turn it on.
    practice.address_line1, practice.city, practice.state, practice.postal_code = (
        "100 Main Street",
        "Chicago",
        "IL",
        "60601",
    )
    practice.save(update_fields=["address_line1", "city", "state", "postal_code"])
    records = []
    for i in range(PATIENTS):
        birth = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(27_000))
        records.append(
            {
                "_index": i,
                "external_id": f"EMR-{i:06d}",
                "first_name": ["Ann", "Bob", "Cara", "Dev", "Eli", "Fay"][i % 6],
                "last_name": f"{['Lee', 'Patel', 'Garcia', 'Smith', 'Nguyen'][i % 5]}{i}",
                "birth_date": birth,
                "phone": f"+1312555{i:04d}",
                "email": f"patient{i}@example.test",
                "status": "active" if i % 9 else "inactive",
                "primary_provider": PROVIDERS[i % len(PROVIDERS)],
                "tags": rng.sample(TAGS, i % 3),
            }
        )
    for start in range(0, PATIENTS, 1000):
        result = patients_upsert(practice=practice, records=records[start : start + 1000])
        assert not result.errors, result.errors
    for spec in _drip_specs():
        serializer = CampaignSerializer(data=spec)
        assert serializer.is_valid(), serializer.errors
        campaign_create(practice=practice, data=serializer.validated_data, actor=None)
    serializer = CampaignSerializer(
        data={
            "name": "Closed Monday",
            "kind": "blast",
            "enabled": True,
            "messages": [
                {"channel": "sms", "body": "We are closed Monday. https://practice.test/hours"}
            ],
        }
    )
    assert serializer.is_valid(), serializer.errors
    blast = campaign_create(practice=practice, data=serializer.validated_data, actor=None)
    # The blast goes out: one message per patient, then their fates, set-wise.
    now = dt.datetime.now(dt.UTC)
    campaigns_run_due(now=now)
    steps_materialize(now=now)
    messages = OutboundMessage.objects.filter(campaign=blast)
    ids = list(messages.order_by("id").values_list("id", flat=True))
    for status, share, at in [
        (MessageStatus.SENDING, 1.0, now),
        (MessageStatus.SENT, 1.0, now + dt.timedelta(seconds=5)),
        (MessageStatus.DELIVERED, 0.9, now + dt.timedelta(seconds=30)),
        (MessageStatus.CLICKED, 0.1, now + dt.timedelta(hours=2)),
    ]:
        chosen = ids[: int(len(ids) * share)]
        messages_transition(
            messages=OutboundMessage.objects.filter(pk__in=chosen),
            status=status,
            reason="",
            at=at,
            source="benchmark",
        )
    failed = ids[int(len(ids) * 0.95) :]
    messages_transition(
        messages=OutboundMessage.objects.filter(pk__in=failed),
        status=MessageStatus.FAILED,
        reason="provider error 30003",
        at=now + dt.timedelta(seconds=40),
        source="benchmark",
    )
    rollups_refresh()
    with connection.cursor() as cursor:  # the planner's statistics, as autovacuum keeps them
        cursor.execute("ANALYZE")
    users = []
    for n in range(USERS):
        user = User.objects.create_user(email=f"staff{n}@practice.test", password=None)
        Membership.objects.create(practice=practice, user=user, role=Role.MANAGER)
        users.append(user)
    return {
        "users": users,
        "messages": len(ids),
        "pages": {
            "Drip campaign list": reverse("campaigns:drip_list"),
            f"Patient list ({PATIENTS:,} patients)": reverse("patients:list"),
            f"Campaign report ({len(ids):,} messages)": reverse(
                "reports:campaign", args=[blast.pk]
            ),
        },
    }


def session_cookie(user) -> str:
    """A signed-in session for ``user``, made as ``django.contrib.auth.login`` makes one."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def load(port: int, path: str, cookies: list[str], seconds: float, think: bool) -> dict:
    """Each user (a thread with its own session) requests ``path`` until ``seconds`` have
    passed; returns the latencies (ms) and the request rate."""
    latencies: list[list[float]] = [[] for _ in cookies]
    errors: list[str] = []
    stop = time.perf_counter() + seconds

    def user(index: int) -> None:
        rng = random.Random(index)
        headers = {"Cookie": cookies[index], "Host": "127.0.0.1"}
        if think:  # users do not arrive in lockstep
            time.sleep(rng.uniform(0, THINK_SECONDS[1]))
        while time.perf_counter() < stop:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            started = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            latencies[index].append((time.perf_counter() - started) * 1000)
            connection.close()
            if response.status != 200:
                errors.append(f"{response.status} {path}")
            if think:
                time.sleep(rng.uniform(*THINK_SECONDS))

    started = time.perf_counter()
    threads = [threading.Thread(target=user, args=(i,)) for i in range(len(cookies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
    values = [value for per_user in latencies for value in per_user]
    return {
        "requests": len(values),
        "per_second": len(values) / elapsed,
        "p50": percentile(values, 0.50),
        "p95": percentile(values, 0.95),
        "max": max(values),
    }


def measure(seconds: float) -> list[dict]:
    url = database_url_for("web")
    recreate_database(url)
    setup_django(url)
    started = time.perf_counter()
    data = populate()
    print(f"data ready in {time.perf_counter() - started:.1f} s", flush=True)
    cookies = [session_cookie(user) for user in data["users"]]
    database = url.rsplit("/", 1)[1]
    rows = []
    with gunicorn(url, workers=WORKERS) as base:
        port = int(base.rsplit(":", 1)[1])
        for name, path in data["pages"].items():
            load(port, path, cookies[:WORKERS], 2, think=False)  # warm every worker up
            for shape, think in (("users", True), ("saturation", False)):
                # gunicorn is this process's child (its workers, the master's children).
                with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as children:
                    groups = {"server": [int(pid) for pid in children.read().split()]}
                before = cpu_snapshot(groups, database)
                started = time.perf_counter()
                figures = load(port, path, cookies, seconds, think)
                elapsed = time.perf_counter() - started
                after = cpu_snapshot(groups, database)
                used = {name: after[name] - before[name] for name in after}
                ours = used["server"] + used["postgres (this database)"] + used[EXITED_BACKENDS]
                figures["others_cpu"] = max(used["machine busy"] - ours, 0) / (
                    elapsed * (os.cpu_count() or 1)
                )
                figures["server_cpu_ms"] = ours / max(figures["requests"], 1) * 1000
                rows.append({"page": name, "path": path, "shape": shape, **figures})
                print(rows[-1], flush=True)
    return rows


def bench(size: str) -> Section:
    rows = measure(SIZES[size])
    section = Section(title="Web: p95 latency under 20 concurrent users")
    section.lines += [
        f"Through gunicorn ({WORKERS} sync workers, DEBUG off) on this machine, each of "
        f"{USERS} users with their own signed-in session; {SIZES[size]} s per page and load "
        "shape. **users**: a 0.5 to 1.5 s pause between a user's requests (the target applies "
        "to it); **saturation**: no pause, 20 requests always in flight. Latency is measured "
        "by the client, connection included.",
        "",
        "| page | load | requests | requests/s | p50 ms | p95 ms | max ms | server CPU ms "
        "per request | CPU taken by other programs | meets target |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        meets = "yes" if row["p95"] < TARGET_MS else "no"
        section.lines.append(
            f"| {row['page']} | {row['shape']} | {row['requests']:,} | "
            f"{row['per_second']:.0f} | {row['p50']:.0f} | {row['p95']:.0f} | "
            f"{row['max']:.0f} | {row['server_cpu_ms']:.0f} | {row['others_cpu']:.0%} | "
            f"{meets if row['shape'] == 'users' else 'n/a'} |"
        )
    for row in rows:
        section.results.append(
            Result(
                name=f"Web p95, {row['page']}"
                + (", 20 users" if row["shape"] == "users" else ", saturated (informative)"),
                measured=f"{row['p95']:.0f} ms ({row['per_second']:.0f} req/s)",
                target=f"< {TARGET_MS} ms" if row["shape"] == "users" else "n/a",
                meets=row["p95"] < TARGET_MS if row["shape"] == "users" else None,
            )
        )
    return section


if __name__ == "__main__":
    cli(bench)
