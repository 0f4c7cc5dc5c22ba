"""Shared helpers of the benchmark scripts: a fresh Postgres database, a gunicorn server,
timing (the report benchmarks' HTTP driver among them), and the BENCHMARKS.md table."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/trackstat_bench"


def bench_database_url() -> str:
    """BENCH_DATABASE_URL, else a dedicated local database (never the one in DATABASE_URL)."""
    return os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)


def admin_connect(url: str):
    """An autocommit connection to the maintenance database of ``url``'s server."""
    import psycopg
    from dj_database_url import parse

    settings = parse(url)
    return psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"] or "postgres",
        password=settings["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )


def recreate_database(url: str) -> None:
    """Drop and create the benchmark database, then migrate it."""
    from dj_database_url import parse

    settings = parse(url)
    if settings["ENGINE"] != "django.db.backends.postgresql":
        raise SystemExit(
            "The benchmarks measure PostgreSQL: set BENCH_DATABASE_URL to postgres://…"
        )
    name = settings["NAME"]
    with admin_connect(url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=bench_env(url),
        check=True,
    )


def settle(url: str | None = None) -> float:
    """Let the writes made so far reach the disk before a measure starts: PostgreSQL's
    ``CHECKPOINT`` on ``url``'s server (the bench database's by default), then the kernel's
    ``sync``; return the seconds it took. A measure taken right after gigabytes were written
    (a database generated or copied, the previous benchmark's run) otherwise shares the disk
    and the cores with their write-back."""
    started = time.perf_counter()
    with admin_connect(url or bench_database_url()) as admin:
        admin.execute("CHECKPOINT")
    os.sync()
    return time.perf_counter() - started


def bench_env(url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DATABASE_URL=url,
        DEBUG="0",
        SECRET_KEY="benchmark-only-secret-key-benchmark-only-secret-key-0123456789",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="0",
        CACHE_URL="locmem://",
        LOG_LEVEL="WARNING",
    )
    return env


def setup_django(url: str) -> None:
    os.environ.update(bench_env(url))
    os.environ["DJANGO_SETTINGS_MODULE"] = "trackstat.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn(url: str, workers: int = 2):
    """A production-like web server (gunicorn, DEBUG off) on a free local port."""
    # DEBUG off serves hashed static files from the manifest: build it first.
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=bench_env(url),
        check=True,
    )
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "trackstat.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--timeout",
            "300",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=bench_env(url),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def machine_description() -> str:
    import psycopg

    cores = os.cpu_count()
    with open("/proc/meminfo") as meminfo:
        kib = int(meminfo.readline().split()[1])
    try:
        from dj_database_url import parse

        settings = parse(bench_database_url())
        with psycopg.connect(
            host=settings["HOST"],
            port=settings["PORT"] or 5432,
            user=settings["USER"] or "postgres",
            dbname="postgres",  # the server's version: any database will do
        ) as conn:
            server = conn.execute("SHOW server_version").fetchone()[0]
    except Exception:  # the description is informative only
        server = "unknown"
    return (
        f"{cores} cores, {kib / 1024 / 1024:.0f} GiB memory, PostgreSQL {server}, "
        f"Python {platform.python_version()}, {platform.machine()}"
    )


@dataclass(frozen=True)
class Result:
    """One measured figure against its target, for the summary table of BENCHMARKS.md."""

    name: str
    measured: str  # as printed, with its unit ("12.3 s", "4,210 msg/s", "38x slower")
    target: str  # as printed ("≤ 30 s")
    meets: bool | None  # None: informative, no target


@dataclass
class Section:
    """A benchmark's part of BENCHMARKS.md: its heading, what it did (Markdown lines) and
    its results against targets."""

    title: str
    lines: list[str] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)


def timed(fn, *args, **kwargs):
    """``(seconds, fn(*args, **kwargs))``."""
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - started, value


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def cli(bench) -> None:
    """The command line of one benchmark module: ``python -m benchmarks.<name> --size
    small|full [--out FILE]``. ``bench(size)`` returns its Section; it is printed, and
    written as JSON to FILE for ``benchmarks/run.py``, which runs each module in its own
    process (each uses its own database, and Django is set up once per process)."""
    import argparse
    import dataclasses
    import json

    parser = argparse.ArgumentParser()
    parser.add_argument("--size", choices=["small", "full"], default="small")
    parser.add_argument("--out")
    args = parser.parse_args()
    section = bench(args.size)
    print(f"## {section.title}")
    print("\n".join(section.lines))
    for result in section.results:
        print(f"- {result.name}: {result.measured} (target {result.target})")
    if args.out:
        Path(args.out).write_text(json.dumps(dataclasses.asdict(section)))


def section_read(path: Path) -> Section:
    import json

    data = json.loads(path.read_text())
    return Section(
        title=data["title"],
        lines=data["lines"],
        results=[Result(**result) for result in data["results"]],
    )


def database_url_for(name: str) -> str:
    """A dedicated benchmark database per module, named after BENCH_DATABASE_URL's database
    (``trackstat_bench_<name>`` by default; ``mine_<name>`` for ``…/mine``), so the modules
    never disturb each other's data, nor the runs of someone who set their own name."""
    server, database = bench_database_url().rsplit("/", 1)
    return f"{server}/{database.split('?', 1)[0]}_{name}"


# Each report timing: this many requests after one warm-up, one at a time.
RUNS = 20


def latencies(fn, runs: int = RUNS) -> list[float]:
    """Milliseconds of ``runs`` calls of ``fn`` after one warm-up (connections, caches)."""
    fn()
    out = []
    for _ in range(runs):
        seconds, _ = timed(fn)
        out.append(seconds * 1000)
    return out


def http_getter(url: str, *, headers: dict, expect: bytes):
    """A GET of ``url`` that fails unless it answers 200 with ``expect`` in the body (so a
    login page or an error is never timed as a report)."""

    def get():
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read()
        if response.status != 200 or expect not in body:
            raise RuntimeError(f"{url} did not answer the report ({response.status})")
        return body

    return get


def session_cookie(user) -> str:
    """A ``Cookie`` header of a logged-in session for ``user`` (as the test client makes)."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}"


def report_timings(
    url: str, campaign, ranges: dict, *, page_expect: bytes, api_expect: bytes
) -> list[tuple[str, str, float, float, float]]:
    """Time a campaign's report three ways for each of ``ranges`` (label: (from, to)): the
    selector in process, the report page as a Manager and the API endpoint with an API key,
    both through gunicorn (2 workers, DEBUG off) over HTTP. Rows of (range, read through,
    median ms, p95 ms, max ms)."""
    from reports.selectors import campaign_report
    from tests.factories import MembershipFactory
    from trackstat.models import Role
    from trackstat.services import api_key_create

    manager = MembershipFactory(practice=campaign.practice, role=Role.MANAGER).user
    key = api_key_create(practice=campaign.practice, name="bench").secret
    rows = []
    with gunicorn(url, workers=2) as base:
        cookie = session_cookie(manager)
        for label, (start, end) in ranges.items():
            query = f"from={start}&to={end}"
            cases = {
                "selector (in process)": lambda s=start, e=end: campaign_report(
                    campaign, date_from=s, date_to=e
                ),
                "report page (HTTP)": http_getter(
                    f"{base}/reports/campaigns/{campaign.pk}/?{query}",
                    headers={"Cookie": cookie},
                    expect=page_expect,
                ),
                "API endpoint (HTTP)": http_getter(
                    f"{base}/api/v1/campaigns/{campaign.pk}/report?{query}",
                    headers={"Authorization": f"Api-Key {key}"},
                    expect=api_expect,
                ),
            }
            for case, fn in cases.items():
                ms = latencies(fn)
                rows.append((label, case, statistics.median(ms), percentile(ms, 0.95), max(ms)))
                print(rows[-1], flush=True)
    return rows


def report_timing_lines(rows) -> list[str]:
    """The Markdown table of ``report_timings``' rows."""
    lines = [
        "| range | read through | median ms | p95 ms | max ms |",
        "|---|---|---:|---:|---:|",
    ]
    for label, case, median, p95, worst in rows:
        lines.append(f"| {label} | {case} | {median:.1f} | {p95:.1f} | {worst:.1f} |")
    return lines


def report_timing_results(rows, *, name: str, target_ms: int) -> list[Result]:
    """The HTTP rows' p95 against ``target_ms`` (the in-process selector is informative)."""
    return [
        Result(
            name=f"{name}, {label}, {case} (p95)",
            measured=f"{p95:.0f} ms",
            target=f"< {target_ms} ms",
            meets=p95 < target_ms,
        )
        for label, case, _, p95, _ in rows
        if case != "selector (in process)"
    ]
