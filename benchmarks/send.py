"""Benchmark: send throughput, from the outbox to the providers and back to ``sent``.

A fresh database holds P practices of 250 patients each, every one with a mobile number and
an email address, and two blasts per practice (one SMS, one email), materialized into queued
outbox messages before the clock starts (500 messages per practice, within the default pace
of ``SEND_RATE_PER_PRACTICE_PER_MINUTE``, so one tick hands every message over). Then, timed:
one scheduler tick (``tick(send="queue")``) claims the due messages and hands them to Celery
on Redis; ``celery -A trackstat worker`` processes send them through the real Twilio and
SendGrid SDK adapters over HTTP to ``manage.py fake_providers``; the clock stops when every
message is ``sent`` (or later). Target: ≥ 600 messages/s (issue 20: no regression from the
637 measured before it).

    uv run python -m benchmarks.send [--size small|full]
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import zoneinfo
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    ROOT,
    Result,
    Section,
    bench_env,
    cli,
    database_url_for,
    free_port,
    recreate_database,
    setup_django,
)

# Issue 20: no regression from the 637 messages/s measured before it.
TARGET_PER_SECOND = 600
# The CPU row of the PostgreSQL backends that exited while the benchmark ran.
EXITED_BACKENDS = "postgres (connections closed meanwhile, any database)"
PATIENTS_PER_PRACTICE = 250
# Messages in all: two per patient (one SMS blast, one email blast per practice).
SIZES = {"small": 5_000, "full": 30_000}
BROKER_URL = os.environ.get("BENCH_SEND_BROKER_URL", "redis://127.0.0.1:6379/12")
# Worker processes and the concurrency (prefork children) of each.
WORKERS = int(os.environ.get("BENCH_SEND_WORKERS", "1"))
CONCURRENCY = int(os.environ.get("BENCH_SEND_CONCURRENCY", "4"))
ACCOUNT_SID = "AC" + "0" * 32
# Real zones around the world: the practices get the one where it is now early afternoon,
# so the sending window (08:00 to 21:00 local) is open while the workers send (they check
# quiet hours against the wall clock).
ZONES = [
    "Pacific/Honolulu",
    "America/Los_Angeles",
    "America/Chicago",
    "America/New_York",
    "America/Sao_Paulo",
    "Atlantic/Azores",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Athens",
    "Europe/Moscow",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Noumea",
    "Pacific/Auckland",
]


def afternoon_zone(now: dt.datetime) -> str:
    def distance(name: str) -> float:
        local = now.astimezone(zoneinfo.ZoneInfo(name))
        return abs(local.hour + local.minute / 60 - 13.5)

    return min(ZONES, key=distance)


def provider_env(fake_url: str) -> dict[str, str]:
    return {
        "SMS_PROVIDER": "twilio",
        "EMAIL_PROVIDER": "sendgrid",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": "bench-token",
        "TWILIO_API_BASE_URL": fake_url,
        "SENDGRID_API_KEY": "SG.bench-key",
        "SENDGRID_API_BASE_URL": fake_url,
        "CELERY_BROKER_URL": BROKER_URL,
        "CELERY_RESULT_BACKEND": BROKER_URL,
    }


def wait_for_port(port: int, process: subprocess.Popen, what: str) -> None:
    import socket

    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.1)


def _descendants(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            found = [int(child) for child in children.read().split()]
    except OSError:
        return []
    return [pid for child in found for pid in (child, *_descendants(child))]


def _cpu(pid: int, *, exited_children: bool = False) -> float:
    """CPU seconds ``pid`` has used, or (``exited_children``) its children that have exited
    and been waited for."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    first = 13 if exited_children else 11  # cutime, cstime; else utime, stime
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(groups: dict[str, list[int]], database: str) -> dict[str, float]:
    """CPU seconds used so far: by each group of processes (with their children), by the
    PostgreSQL backends connected to ``database``, by the backends that have exited (a worker
    that closes its connection after ``CELERY_DB_REUSE_MAX`` tasks takes its backend's CPU
    out of the live ones: it shows in the postmaster's exited children instead), and by the
    whole machine (so what other programs took shows)."""
    snapshot = {
        name: sum(_cpu(pid) for root in roots for pid in (root, *_descendants(root)))
        for name, roots in groups.items()
    }
    snapshot["tick and polling (this process)"] = _cpu(os.getpid())
    snapshot["postgres (this database)"] = 0.0
    postmaster = None
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    # "postgres: [15/main: ]<user> <database> <client> <state>"
                    if f" postgres {database} ".encode() in cmdline.read():
                        snapshot["postgres (this database)"] += _cpu(int(entry))
                        with open(f"/proc/{entry}/stat") as stat:
                            postmaster = int(stat.read().rpartition(")")[2].split()[1])
            except OSError:
                continue
    snapshot[EXITED_BACKENDS] = _cpu(postmaster, exited_children=True) if postmaster else 0.0
    with open("/proc/stat") as stat:
        times = [int(value) for value in stat.readline().split()[1:9]]
    busy = sum(times) - times[3] - times[4]  # all but idle and iowait
    snapshot["machine busy"] = busy / os.sysconf("SC_CLK_TCK")
    return snapshot


def populate(practices: int, zone: str) -> None:
    """Practices, patients (through the sync service) and two materialized blasts each."""
    from campaigns.engine.enroll import campaigns_run_due
    from campaigns.engine.steps import steps_materialize
    from campaigns.language.spec import CampaignSerializer
    from campaigns.services import campaign_create
    from patients.sync.patients import patients_upsert
    from trackstat.services import practice_create

    for p in range(practices):
        practice, _ = practice_create(
            name=f"Send bench {p}",
            time_zone=zone,
            sms_from=f"+1312777{p:04d}",
            email_from=f"office{p}@practice.test",
        )
        records = [
            {
                "_index": i,
                "external_id": f"P{p}-{i}",
                "first_name": "Pat",
                "last_name": f"Bench{i}",
                "phone": f"+1{(p + 200):03d}555{i:04d}",
                "email": f"patient{p}x{i}@example.test",
            }
            for i in range(PATIENTS_PER_PRACTICE)
        ]
        result = patients_upsert(practice=practice, records=records)
        assert not result.errors, result.errors
        for message in (
            {"channel": "sms", "body": "Hi {{PatientFirstName}}, we are closed Monday."},
            {
                "channel": "email",
                "subject": "Closed Monday",
                "body": "<p>Hi {{PatientFirstName}}, we are closed Monday. "
                "See https://practice.test/hours</p>",
            },
        ):
            serializer = CampaignSerializer(
                data={
                    "name": f"Closed Monday ({message['channel']})",
                    "kind": "blast",
                    "enabled": True,
                    "messages": [{**message, "delay": {"value": 0, "unit": "days"}}],
                }
            )
            assert serializer.is_valid(), serializer.errors
            campaign_create(practice=practice, data=serializer.validated_data, actor=None)
    now = dt.datetime.now(dt.UTC)
    campaigns_run_due(now=now)
    steps_materialize(now=now)


def start_workers(env: dict[str, str], log_dir: Path) -> list[subprocess.Popen]:
    processes = []
    for n in range(WORKERS):
        log = open(log_dir / f"send-worker-{n}.log", "w")  # noqa: SIM115 (closed with the process)
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "trackstat",
                    "worker",
                    "--concurrency",
                    str(CONCURRENCY),
                    "--hostname",
                    f"bench-send-{n}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--loglevel",
                    "WARNING",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    return processes


def workers_ready(expected: int) -> None:
    from trackstat.celery import app

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if len(replies) >= expected:
            return
    raise RuntimeError("the Celery workers did not start")


def measure(total: int) -> dict:
    import redis

    url = database_url_for("send")
    recreate_database(url)
    port = free_port()
    fake_url = f"http://127.0.0.1:{port}"
    os.environ.update(provider_env(fake_url))
    setup_django(url)
    redis.Redis.from_url(BROKER_URL).flushdb()

    from django.db.models import Count

    from campaigns.engine import tick
    from messaging.models import SENT_STATUSES, MessageStatus, OutboundMessage

    practices = total // (2 * PATIENTS_PER_PRACTICE)
    zone = afternoon_zone(dt.datetime.now(dt.UTC))
    started = time.perf_counter()
    populate(practices, zone)
    setup_seconds = time.perf_counter() - started
    queued = OutboundMessage.objects.filter(status=MessageStatus.QUEUED).count()
    print(f"{practices} practices, {queued:,} queued messages ({setup_seconds:.1f} s)", flush=True)

    env = {**bench_env(url), **provider_env(fake_url)}
    log_dir = ROOT / "var"
    log_dir.mkdir(exist_ok=True)
    fake = subprocess.Popen(
        [sys.executable, "manage.py", "fake_providers", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    workers = start_workers(env, log_dir)
    try:
        wait_for_port(port, fake, "the fake provider server")
        workers_ready(WORKERS)
        done_statuses = [s for s in MessageStatus.values if s in SENT_STATUSES]
        groups = {"workers": [w.pid for w in workers], "fake providers": [fake.pid]}
        database = url.rsplit("/", 1)[1]
        cpu_before = cpu_snapshot(groups, database)
        started = time.perf_counter()
        summary = tick(now=dt.datetime.now(dt.UTC), send="queue")
        handed_over = time.perf_counter() - started
        deadline = started + 600
        pending = OutboundMessage.objects.filter(
            status__in=[MessageStatus.QUEUED, MessageStatus.SENDING]
        )
        while pending.exists() and time.perf_counter() < deadline:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        cpu_after = cpu_snapshot(groups, database)
        done = OutboundMessage.objects.filter(status__in=done_statuses).count()
        by_status = dict(
            OutboundMessage.objects.values_list("status").annotate(n=Count("id")).order_by()
        )
    finally:
        for process in [*workers, fake]:
            process.terminate()
        for process in [*workers, fake]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    return {
        "practices": practices,
        "messages": queued,
        "dispatched": summary["messages_dispatched"],
        "handed_over_seconds": round(handed_over, 2),
        "seconds": round(elapsed, 2),
        "sent": done,
        "per_second": round(done / elapsed),
        "by_status": by_status,
        "zone": zone,
        "cpu": {name: round(cpu_after[name] - cpu_before[name], 1) for name in cpu_before},
    }


def bench(size: str) -> Section:
    row = measure(SIZES[size])
    from django.conf import settings

    print(row, flush=True)
    meets = row["sent"] >= row["messages"] and row["per_second"] >= TARGET_PER_SECOND
    section = Section(title="Send throughput: outbox → Celery → provider SDKs → `sent`")
    section.lines += [
        f"{row['practices']} practices x {PATIENTS_PER_PRACTICE} patients, one SMS and one email "
        f"blast each: {row['messages']:,} queued messages. Timed: one tick claims and hands "
        f"them to Celery (Redis), {WORKERS} worker process(es) x {CONCURRENCY} prefork "
        "children send them with the official Twilio and SendGrid SDKs over HTTP to "
        "`manage.py fake_providers` (one process, a thread per connection), until every "
        f"message is `sent` or later. Send tasks take {settings.SEND_TASK_BATCH_SIZE} messages "
        f"each (`SEND_TASK_BATCH_SIZE`), with up to {settings.SEND_CONCURRENCY} provider "
        "calls in flight at once (`SEND_CONCURRENCY`); a worker keeps its database connection "
        f"(`CELERY_DB_REUSE_MAX={settings.CELERY_DB_REUSE_MAX}`) and one pool of kept-alive "
        "connections per provider account.",
        "",
        "| messages | tick (claim + enqueue) s | all sent s | messages/s | statuses |",
        "|---:|---:|---:|---:|---|",
        f"| {row['messages']:,} | {row['handed_over_seconds']} | {row['seconds']} | "
        f"{row['per_second']:,} | "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(row["by_status"].items()))
        + " |",
    ]
    cpu = row["cpu"]
    per_message = {name: seconds / max(row["messages"], 1) * 1000 for name, seconds in cpu.items()}
    ours = sum(v for k, v in cpu.items() if k != "machine busy")
    section.lines += [
        "",
        f"Where the CPU went while it ran ({row['seconds']} s on {os.cpu_count()} cores = "
        f"{row['seconds'] * (os.cpu_count() or 1):.0f} CPU-seconds available):",
        "",
        "| process | CPU s | ms per message |",
        "|---|---:|---:|",
        *(
            f"| {name} | {seconds} | {per_message[name]:.2f} |"
            for name, seconds in cpu.items()
            if name != "machine busy"
        ),
        f"| other programs on the machine | {max(cpu['machine busy'] - ours, 0):.1f} | |",
    ]
    section.results.append(
        Result(
            name="Send throughput",
            measured=f"{row['per_second']:,} messages/s",
            target=f"≥ {TARGET_PER_SECOND} messages/s",
            meets=meets,
        )
    )
    return section


if __name__ == "__main__":
    cli(bench)
