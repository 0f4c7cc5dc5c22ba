"""A real Celery worker process runs the scheduler tick end to end.

The worker talks to the configured broker (Redis in CI, the filesystem transport with nothing
set) and to this test's database; the test sends the tick task, waits for its result through
the result backend, and reads the row the worker wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from campaigns.models import SchedulerHeartbeat
from campaigns.tasks import run_tick_task

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_database_url() -> str:
    """A DATABASE_URL for the test database this process is using."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{quote(db['USER'], safe='')}{password}@{db['HOST']}{port}/{db['NAME']}"


test_database_url.__test__ = False  # a helper, not a test


@pytest.fixture
def worker_queue():
    """Start a worker on a queue of its own (so no other worker takes our task)."""
    queue = f"test-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "trackstat.settings",
        "DEBUG": "1",  # off unless set; the development SECRET_KEY needs it on
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "trackstat",
            "worker",
            "--pool=solo",
            "--queues",
            queue,
            "--hostname",
            f"{queue}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield queue
    finally:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        print(output)  # shown by pytest when the test fails


def test_real_worker_runs_the_tick(worker_queue):
    assert not SchedulerHeartbeat.objects.exists()
    result = run_tick_task.apply_async(queue=worker_queue)
    summary = result.get(timeout=90)
    assert set(summary) >= {"now", "campaigns_run", "enrollments_created", "messages_created"}
    heartbeat = SchedulerHeartbeat.objects.get(name="tick")
    assert heartbeat.summary == summary
    assert result.successful()
