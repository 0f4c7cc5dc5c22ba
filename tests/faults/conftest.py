"""Shared pieces of the fault-injection tests (issue 9): the fake Twilio server the official
SDK sends to, a count of what it accepted per outbox message, real Celery worker processes,
and the exactly-once invariant every test ends with.

The faults are PostgreSQL's and Redis's (a killed connection, a broker that goes away, row
locks under parallel ticks), so the tests run where CI runs them, on PostgreSQL and Redis
(``.ci/run`` sets DATABASE_URL and CELERY_BROKER_URL); elsewhere they skip and say why.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import time_machine
from django.conf import settings
from django.db import connection

from campaigns.language.spec import CampaignSerializer
from campaigns.models import Campaign, Enrollment
from campaigns.services import campaign_create
from messaging.fake_providers import FakeProviders
from messaging.models import OutboundMessage
from patients.models import Patient
from tests.campaigns.builders import Clinic, ny
from trackstat.models import Practice

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_SID = "AC" + "9" * 32
AUTH_TOKEN = "fault-injection-token"

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="fault injection runs on PostgreSQL (CI sets DATABASE_URL): row locks, killed "
    "backends and parallel ticks are PostgreSQL's; SQLite serializes writers",
)
needs_redis = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("redis://"),
    reason="needs the Redis broker (CI sets CELERY_BROKER_URL): the faults are Redis's",
)


# --- the provider ----------------------------------------------------------------------------


class CountingFake(FakeProviders):
    """The fake Twilio/SendGrid server, counting what it accepted: ``accepted`` holds the
    outbox id (from the status-callback URL the app passes) and the sid of every SMS it took,
    in order. A second acceptance for one outbox id is a second text on the patient's phone.

    ``latency``: seconds each accepted send takes before its answer (sends in flight)."""

    def __init__(self, *args, latency: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.latency = latency
        self.accepted: list[tuple[int, str]] = []

    def twilio_accepted(self, message, status_callback):
        outbox = parse_qs(urlsplit(status_callback).query)["outbox"][0]
        with self._lock:
            self.accepted.append((int(outbox), message["sid"]))
        super().twilio_accepted(message, status_callback)
        if self.latency:
            time.sleep(self.latency)

    def posts_for(self, outbox_id: int) -> int:
        """How many send requests (answered or not) named ``outbox_id``."""
        suffix = f"outbox={outbox_id}"
        return sum(
            1
            for r in self.requests
            if r.method == "POST" and r.data.get("StatusCallback", "").endswith(suffix)
        )


def provider_env(fake: FakeProviders) -> dict[str, str]:
    """Settings (as environment variables) that send SMS with the Twilio SDK to ``fake``."""
    return {
        "SMS_PROVIDER": "twilio",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_API_BASE_URL": fake.base_url,
        "PUBLIC_BASE_URL": settings.PUBLIC_BASE_URL,
    }


@pytest.fixture
def start_fake(settings):
    """``start_fake(**options)``: a CountingFake serving from a thread; this process's
    settings send SMS to it."""
    started: list[CountingFake] = []

    def start(**options) -> CountingFake:
        fake = CountingFake(**options).start()
        for name, value in provider_env(fake).items():
            setattr(settings, name, value)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


# --- the invariant ---------------------------------------------------------------------------


def assert_each_step_accepted_once(fake: CountingFake, steps: Iterable[tuple[int, int]]):
    """Every (enrollment id, step position) in ``steps`` has one outbound message, which the
    provider accepted exactly once; the provider accepted nothing else."""
    steps = list(steps)
    rows = {
        pk: (enrollment_id, position)
        for pk, enrollment_id, position in OutboundMessage.objects.filter(
            enrollment__isnull=False
        ).values_list("pk", "enrollment_id", "step_position")
    }
    per_step = Counter(rows.values())
    assert per_step == Counter(dict.fromkeys(steps, 1)), "not one outbound message per step"
    accepted = Counter(rows.get(pk, ("not a campaign step", pk)) for pk, _sid in fake.accepted)
    duplicates = {step: n for step, n in accepted.items() if n > 1}
    assert not duplicates, f"the provider accepted these (enrollment, step)s twice: {duplicates}"
    missing = set(steps) - set(accepted)
    assert not missing, f"due steps the provider never accepted: {sorted(missing)}"
    assert set(accepted) == set(steps), f"unexpected sends: {set(accepted) - set(steps)}"


# --- real Celery workers ---------------------------------------------------------------------


def worker_database_url() -> str:
    """A DATABASE_URL for the test database this process is using."""
    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{quote(db['USER'], safe='')}{password}@{db['HOST']}{port}/{db['NAME']}"


@contextmanager
def celery_worker(*, broker_url: str, env: dict[str, str]):
    """A real ``celery worker`` process (solo pool: it runs each task itself) on the default
    queue of ``broker_url``, with this test's database; yields the Popen. Stopped at the end
    (if still alive); its output is printed, which pytest shows when the test fails."""
    name = f"fault-{uuid.uuid4().hex[:8]}@%h"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "trackstat",
            "worker",
            "--pool=solo",
            "--hostname",
            name,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "trackstat.settings",
            "DEBUG": "1",  # off unless set; the development SECRET_KEY needs it on
            "DATABASE_URL": worker_database_url(),
            "CELERY_BROKER_URL": broker_url,
            "CELERY_RESULT_BACKEND": broker_url,
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        print(output)


def wait_until(condition: Callable[[], bool], *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {seconds}s waiting for {what}"
        time.sleep(0.05)


# --- a practice and its campaign -------------------------------------------------------------

# Dates well before the wall clock: a lookup at the fake (reconciliation) finds what it took
# "since" the send, and the fake stamps what it takes with the real time.
BIRTH_DATE = dt.date(1980, 5, 13)
ENABLED_AT = ny(2025, 5, 13, 8, 0)
RUN_AT = ny(2025, 5, 13, 10, 5)  # birthdays, inside the sending window
DAY = dt.timedelta(days=1)
MINUTE = dt.timedelta(minutes=1)


def birthday_spec(steps: int) -> dict:
    """A daily birthday drip of ``steps`` texts, a day apart."""
    return {
        "name": "Happy birthday",
        "enabled": True,
        "trigger": {"type": "birthday", "offset_days": 0},
        "schedule": {"frequency": "daily", "time": "10:00"},
        "messages": [
            {
                "channel": "sms",
                "body": f"Birthday text {position}, {{{{PatientFirstName}}}}.",
                "delay": {"value": 0 if position == 1 else 1, "unit": "days"},
            }
            for position in range(1, steps + 1)
        ],
    }


def campaign_for(practice: Practice, spec: dict, *, enabled_at: dt.datetime = ENABLED_AT):
    """A campaign created as the API creates one, turned on at ``enabled_at``."""
    serializer = CampaignSerializer(data=spec)
    assert serializer.is_valid(), serializer.errors
    with time_machine.travel(enabled_at, tick=False):
        return campaign_create(practice=practice, data=serializer.validated_data, actor=None)


def birthday_patients(clinic: Clinic, count: int) -> list[Patient]:
    return [
        clinic.patient(first_name=f"Pat{n}", birth_date=BIRTH_DATE, phone=f"+1312555{n:04d}")
        for n in range(count)
    ]


def due_steps(campaign: Campaign, positions: Iterable[int]) -> set[tuple[int, int]]:
    """(enrollment id, position) for every enrollment of ``campaign`` and each position."""
    enrollments = Enrollment.objects.filter(campaign=campaign).values_list("pk", flat=True)
    return {(pk, position) for pk in enrollments for position in positions}
