"""The scheduler tick's wiring: the function, the command and the beat schedule."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from campaigns.engine import tick
from campaigns.models import SchedulerHeartbeat
from trackstat.celery import app

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 8, 15, 0, tzinfo=dt.UTC)


def test_tick_records_its_heartbeat_and_returns_a_summary():
    summary = tick(now=NOW)
    assert summary["now"] == NOW.isoformat()
    heartbeat = SchedulerHeartbeat.objects.get(name="tick")
    assert heartbeat.ticked_at == NOW
    assert heartbeat.summary == summary
    tick(now=NOW + dt.timedelta(minutes=1))  # the same row moves forward
    assert SchedulerHeartbeat.objects.get().ticked_at == NOW + dt.timedelta(minutes=1)


def test_tick_refuses_a_naive_instant():
    with pytest.raises(ValueError, match="aware"):
        tick(now=dt.datetime(2026, 3, 8, 10, 0))


def test_tick_command_prints_json_for_the_given_instant():
    out = StringIO()
    call_command("tick", "--now", "2026-03-08T10:00:00-05:00", stdout=out)
    assert json.loads(out.getvalue())["now"] == "2026-03-08T10:00:00-05:00"
    assert SchedulerHeartbeat.objects.get().ticked_at == NOW


@pytest.mark.parametrize("value", ["yesterday", "2026-03-08T10:00:00"])
def test_tick_command_rejects_bad_or_naive_instants(value):
    with pytest.raises(CommandError, match="--now"):
        call_command("tick", "--now", value, stdout=StringIO())
    assert not SchedulerHeartbeat.objects.exists()


def test_beat_runs_the_tick_task_every_minute():
    app.loader.import_default_modules()  # what a worker does at start: autodiscovery
    entry = app.conf.beat_schedule["scheduler-tick"]
    assert entry["task"] in app.tasks
    schedule = entry["schedule"]
    assert schedule.minute == set(range(60))
    assert schedule.hour == set(range(24))


def test_healthz_reports_the_last_tick(client):
    assert client.get("/healthz").json()["last_tick"] is None
    tick(now=NOW)
    assert client.get("/healthz").json()["last_tick"] == NOW.isoformat()
    # Probes call by container address: no ALLOWED_HOSTS check for this one path.
    assert client.get("/healthz", headers={"Host": "10.0.0.7:8000"}).status_code == 200
    assert client.post("/healthz").status_code == 405
