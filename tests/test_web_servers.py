"""The web servers as they run: what they log and what they hold (issue 13, items 16 and 17).

Each test starts the real server (runserver as ``make run`` does, gunicorn with the production
config) on a free local port against this test run's database, sends real HTTP requests and
reads the server's own output or PostgreSQL's list of connections.
"""

from __future__ import annotations

import http.client
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from django.db import connection

from tests.test_celery_worker import test_database_url
from trackstat.log_filters import StripQueryStringsFilter

ROOT = Path(__file__).resolve().parents[1]
SECRET_KEY = "web-server-test-secret-key-web-server-test-secret-key-0123"
# A patient search as staff type it, and the page it came from.
SEARCH = "/patients/?q=Jane+Doe&phone=%2B13125550123&email=jane%40example.test"
REFERER_PATH = "/patients/?q=Doe"
PHI = ["Jane", "Doe", "3125550123", "jane", "q=", "?"]

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="counts the server's PostgreSQL connections (CI sets DATABASE_URL)",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_CONN_MAX_AGE"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="trackstat.settings",
        DATABASE_URL=test_database_url(),
        CACHE_URL="locmem://",
        TRACKSTAT_VAR_DIR=str(tmp_path),
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


@contextmanager
def server(command: list[str], env: dict[str, str], log: Path) -> Iterator[int]:
    """Run ``command`` (with ``{port}`` filled in) until the port answers; yield the port.
    Stopped (SIGTERM, then SIGKILL) at the end; its output is in ``log``."""
    port = _free_port()
    with log.open("w") as output:
        process = subprocess.Popen(
            [part.format(port=port) for part in command],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, log.read_text()
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)  # waiting for a real process to listen
            yield port
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def runserver(port_arg: str = "127.0.0.1:{port}") -> list[str]:
    """The development server as the Procfile runs it (``make run``)."""
    return [sys.executable, "manage.py", "runserver", port_arg, "--noreload", "--skip-checks"]


def _search(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", SEARCH, headers={"Referer": f"http://127.0.0.1:{port}{REFERER_PATH}"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def _request_lines(log: Path) -> list[str]:
    """The log's lines about the search, once the server has written one (it logs a request
    after the response has gone out)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in log.read_text().splitlines() if "/patients/" in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)  # waiting for the real server's log line


# --- item 17: no query strings in the request logs -----------------------------------------


def test_the_query_string_filter():
    record = logging.LogRecord(
        "django.server",
        logging.INFO,
        __file__,
        1,
        '"%s" %s %s',
        (f"GET {SEARCH} HTTP/1.1", "302", "0"),
        None,
    )
    assert StripQueryStringsFilter().filter(record)
    assert record.getMessage() == '"GET /patients/ HTTP/1.1" 302 0'


def test_runserver_logs_a_patient_search_by_path_only(tmp_path):
    log = tmp_path / "runserver.log"
    with server(runserver(), _environment(tmp_path, DEBUG="1"), log) as port:
        assert _search(port) == 302  # signed out: to the sign-in page
        lines = _request_lines(log)
    assert lines, log.read_text()
    assert '"GET /patients/ HTTP/1.1" 302' in lines[0]
    for line in lines:
        for text in PHI:
            assert text not in line, line


def test_gunicorn_logs_a_patient_search_by_path_only(tmp_path):
    command = [  # as the Dockerfile and docker-compose.yml run it
        str(Path(sys.executable).parent / "gunicorn"),
        "trackstat.wsgi",
        "--config",
        "python:trackstat.gunicorn_conf",
        "--bind",
        "127.0.0.1:{port}",
        "--workers",
        "1",
    ]
    env = _environment(
        tmp_path,
        DEBUG="0",
        SECRET_KEY=SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
    )
    log = tmp_path / "gunicorn.log"
    with server(command, env, log) as port:
        assert _search(port) == 302
        lines = _request_lines(log)
    assert lines, log.read_text()
    assert '"GET /patients/ HTTP/1.1" 302' in lines[0]
    for line in lines:
        for text in PHI:
            assert text not in line, line


def test_production_runs_gunicorn_with_that_config():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    web = compose["services"]["web"]["command"]
    assert web[web.index("--config") + 1] == "python:trackstat.gunicorn_conf"
    assert '"--config", "python:trackstat.gunicorn_conf"' in (ROOT / "Dockerfile").read_text()


# --- item 16: the development server holds no database connection between requests ----------


def _backends(application_name: str) -> int:
    with connection.cursor() as cursor:
        # The test runs in a transaction, and PostgreSQL keeps its first look at the activity
        # view for the whole transaction unless told to look again.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            [application_name],
        )
        return cursor.fetchone()[0]


@needs_postgres
def test_runserver_keeps_no_database_connection_between_requests(tmp_path):
    """runserver serves each HTTP connection in a thread of its own. With a connection age
    (CONN_MAX_AGE, 60 s by default) every one of those threads kept its database connection
    while its browser connection stayed open, until PostgreSQL refused new clients."""
    name = f"trackstat-runserver-{uuid.uuid4().hex[:8]}"
    env = _environment(
        tmp_path, DEBUG="1", DATABASE_URL=f"{test_database_url()}?application_name={name}"
    )
    with server(runserver(), env, tmp_path / "runserver.log") as port:
        browsers = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(3)]
        try:
            for browser in browsers:
                browser.request(
                    "GET", "/api/v1/practice", headers={"Authorization": "Api-Key ts_0000_nope"}
                )
                response = browser.getresponse()
                body = response.read()
                # Answered from the database (the key was looked up), connection kept alive.
                assert b"Invalid or revoked API key" in body
                assert response.getheader("Connection", "").lower() != "close"
            deadline = time.monotonic() + 10
            while _backends(name) and time.monotonic() < deadline:
                time.sleep(0.1)  # the server closes its connection after sending the response
            assert _backends(name) == 0
        finally:
            for browser in browsers:
                browser.close()
