"""The README promise: `make run` serves the product on the embedded default.

Runs the real command (migrate, seed_demo, then web + worker + beat under honcho) with nothing
configured but a private var/ folder, waits for the login page, signs in with every demo login,
and waits for beat and the worker to complete a scheduler tick.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from demo.management.commands.seed_demo import DEMO_LOGINS

ROOT = Path(__file__).resolve().parents[1]
# Nothing configured: `make run` itself must turn DEBUG on (it is off unless set).
CONFIG_VARIABLES = {
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "CACHE_URL",
    "DEBUG",
}

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(opener, url: str, data: dict | None = None) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with opener.open(url, data=body, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def sign_in(base: str, email: str, password: str) -> str:
    """Sign in through the login form; return the page the browser lands on."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    _, page = fetch(opener, f"{base}/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    opener.addheaders = [("Referer", f"{base}/accounts/login/")]
    status, landing = fetch(
        opener,
        f"{base}/accounts/login/",
        {"csrfmiddlewaretoken": token, "username": email, "password": password},
    )
    assert status == 200, (email, status)
    return landing


def test_make_run_serves_the_product_and_every_demo_login_works(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # pytest-django's; make run uses the real settings
    env.update(TRACKSTAT_VAR_DIR=str(tmp_path), PORT=str(port))
    log = (tmp_path / "make-run.log").open("w")
    process = subprocess.Popen(
        ["make", "run", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = time.monotonic()
    try:
        opener = urllib.request.build_opener()
        status = None
        # Migrating a new database and seeding the demo take about 25 s on an idle 2-core
        # machine; the budget leaves room for one busy with other tests.
        while time.monotonic() - started < 150:
            try:
                status, page = fetch(opener, f"{base}/accounts/login/")
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "make-run.log").read_text()
                time.sleep(0.5)
        assert status == 200, (tmp_path / "make-run.log").read_text()
        assert "Sign in" in page

        output = (tmp_path / "make-run.log").read_text()
        assert f"http://127.0.0.1:{port}/" in output
        for email, password, role, _first, _last in DEMO_LOGINS:
            assert email in output
            assert password in output
            landing = sign_in(base, email, password)
            assert f">{role.label}</span>" in landing, email

        # Beat fires at the next minute boundary; the worker runs the tick.
        deadline = time.monotonic() + 90
        last_tick = None
        while last_tick is None and time.monotonic() < deadline:
            last_tick = json.loads(fetch(opener, f"{base}/healthz")[1])["last_tick"]
            time.sleep(1)
        assert last_tick is not None, (tmp_path / "make-run.log").read_text()
        # migrate made the cache table (no separate step); the static files are found.
        status, health = fetch(opener, f"{base}/healthz")
        assert status == 200, health
        assert json.loads(health)["cache"] == "ok"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
