"""Real Celery worker processes run the scheduler tick end to end.

The workers talk to the configured broker (Redis in CI, the filesystem transport with nothing
set) and to this test's database; the test sends beat's tick task, waits for its result
through the result backend (the groups it fanned out into), then for the groups' tasks, which
the two workers share, and reads the heartbeat rows they wrote.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
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


TICK_GROUPS = 4


@pytest.fixture
def worker_queue():
    """Start two workers on a queue of their own (so no other worker takes our tasks)."""
    queue = f"test-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "trackstat.settings",
        "DEBUG": "1",  # off unless set; the development SECRET_KEY needs it on
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND,
        "TICK_GROUPS": str(TICK_GROUPS),
    }
    processes = [_worker(queue, env, n) for n in range(2)]
    try:
        yield queue
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                output, _ = process.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
            print(output)  # shown by pytest when the test fails


def _worker(queue: str, env: dict[str, str], number: int) -> subprocess.Popen:
    return subprocess.Popen(
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
            f"{queue}-{number}@%h",
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


def test_real_workers_run_the_tick_fanned_out_into_groups(worker_queue):
    assert not SchedulerHeartbeat.objects.exists()
    result = run_tick_task.apply_async(queue=worker_queue)
    fanned = result.get(timeout=90)
    assert result.successful()
    assert fanned["groups"] == TICK_GROUPS
    now = dt.datetime.fromisoformat(fanned["now"])
    deadline = time.monotonic() + 90
    while not SchedulerHeartbeat.objects.filter(name="tick", ticked_at=now).exists():
        assert time.monotonic() < deadline, "the groups' tasks never all ran"
        time.sleep(0.2)
    groups = SchedulerHeartbeat.objects.exclude(name="tick")
    assert sorted(groups.values_list("name", "ticked_at")) == [
        (f"tick:{group}", now) for group in range(TICK_GROUPS)
    ]
    heartbeat = SchedulerHeartbeat.objects.get(name="tick")
    assert heartbeat.summary["groups"] == TICK_GROUPS
    assert {"campaigns_run", "enrollments_created", "messages_created"} <= set(heartbeat.summary)
