"""Faults around real Celery workers and the Redis broker (issue 9).

- A worker process killed (SIGKILL) while its provider call is in flight: the message is not
  sent again — not by the next worker, not by a redelivered task, not by the next ticks — and
  reconciliation settles it to what the provider really did.
- Redis going away in the middle of a tick's hand-off to the send queue: the tick fails
  loudly, the claimed messages were never sent, and once Redis is back the lost claims are
  recovered and every message goes out once.

The workers are real ``celery worker`` processes; the provider is the fake Twilio server the
official SDK talks HTTP to. The worker reads the wall clock, so these ticks run at the real
time, for a practice whose time zone puts that time inside its sending window.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import zoneinfo

import pytest
from django.conf import settings
from django.utils import timezone
from kombu.exceptions import OperationalError

from campaigns.engine import tick
from campaigns.models import SchedulerHeartbeat
from messaging.fake_providers import TWILIO_SLOW
from messaging.models import MessageStatus, OutboundMessage
from messaging.outbox.dispatch import CLAIM_SECONDS
from messaging.outbox.reconcile import messages_reconcile
from messaging.tasks import send_messages_task
from patients.models import Patient
from tests.campaigns.builders import Clinic
from tests.factories import PracticeFactory
from tests.faults.conftest import (
    MINUTE,
    assert_each_step_accepted_once,
    birthday_patients,
    campaign_for,
    celery_worker,
    due_steps,
    needs_postgres,
    needs_redis,
    provider_env,
    wait_until,
)
from trackstat.celery import app as celery_app

pytestmark = [
    pytest.mark.integration,
    needs_postgres,
    needs_redis,
    pytest.mark.django_db(transaction=True),
]

CLAIM = dt.timedelta(seconds=CLAIM_SECONDS)


def midday_practice() -> Clinic:
    """A practice whose local time is now between 11:00 and 13:00 (UTC offsets of whole
    hours, ``Etc/GMT±N``), so the real-time sends are inside its sending window."""
    hour = timezone.now().hour
    offset = (12 - hour + 12) % 24 - 12  # local = UTC + offset, in -12 … +11
    name = "Etc/UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
    zoneinfo.ZoneInfo(name)  # it exists
    return Clinic(PracticeFactory(time_zone=name))


def blast_now(clinic: Clinic, count: int):
    """``count`` patients and a one-text blast due now; returns the campaign."""
    birthday_patients(clinic, count)
    spec = {
        "name": "Closed Friday",
        "kind": "blast",
        "enabled": True,
        "send_at": (timezone.now() - MINUTE).isoformat(),
        "messages": [
            {"channel": "sms", "body": "We are closed this Friday, {{PatientFirstName}}."}
        ],
    }
    return campaign_for(clinic.practice, spec, enabled_at=timezone.now() - 2 * MINUTE)


def purge_default_queue() -> None:
    """Tasks other tests left in the broker's default queue would run in our worker."""
    celery_app.control.purge()


# --- a worker killed while the provider call is in flight ------------------------------------


@pytest.mark.parametrize(
    ("concurrency", "size", "called"),
    [
        pytest.param(1, 4, 2, id="one call at a time"),
        pytest.param(4, 6, 4, id="four calls at once"),
    ],
)
def test_a_worker_killed_mid_send_never_sends_again_and_the_message_reconciles(
    start_fake, concurrency, size, called
):
    """A batch is handed to a real worker; it is killed while the provider holds the second
    message's call. One call at a time: the first went out before it (accepted, not yet
    recorded), the last two were never called. Four at once (``SEND_CONCURRENCY``): the
    first four were marked together and all called; the last two were never called.
    Redelivered, the task sends only the ones never called; the others reconcile as sent.
    The provider accepts each message exactly once."""
    fake = start_fake(slow_seconds=60)  # the victim's send is answered a minute later
    clinic = midday_practice()
    campaign = blast_now(clinic, size)
    purge_default_queue()
    now = timezone.now()

    summary = tick(now=now, send="queue")  # the claims commit, then the send task to Redis
    assert summary["messages_dispatched"] == size, summary
    outbox = OutboundMessage.objects.filter(campaign=campaign)
    batch = list(outbox.order_by("pk").values_list("pk", flat=True))  # the order it is sent in
    victim, marked, after = batch[1], batch[:called], batch[called:]
    # Twilio's magic slow number: the fake accepts (and lists) the text, then is slow to say
    # so. The send re-reads the patient's number, so the victim's text goes to it.
    Patient.objects.filter(pk=outbox.get(pk=victim).patient_id).update(phone=TWILIO_SLOW)

    env = {**provider_env(fake), "SEND_CONCURRENCY": str(concurrency)}
    with celery_worker(broker_url=settings.CELERY_BROKER_URL, env=env) as worker:
        wait_until(
            lambda: set(marked) <= {pk for pk, _sid in fake.accepted},
            seconds=60,
            what="the worker's calls to the provider",
        )
        os.kill(worker.pid, signal.SIGKILL)  # mid-call: Twilio took it, the worker never heard
        worker.wait(timeout=10)
    rows = {
        pk: (status, called is not None)
        for pk, status, called in outbox.values_list("pk", "status", "provider_called_at")
    }
    # Called (maybe accepted) and so marked; never called and so unmarked: free to send.
    assert rows == {
        **{pk: (MessageStatus.SENDING, True) for pk in marked},
        **{pk: (MessageStatus.SENDING, False) for pk in after},
    }, rows
    assert all(fake.posts_for(pk) == 1 for pk in marked)

    # The killed worker never acknowledged its task, so the broker redelivers it (after its
    # visibility timeout; here sent again at once) to another worker, which sends the ones
    # never called and leaves the ones that may have gone out alone.
    with celery_worker(broker_url=settings.CELERY_BROKER_URL, env=env):
        send_messages_task.delay(batch)
        wait_until(
            lambda: (
                set(outbox.filter(pk__in=after).values_list("status", flat=True))
                == {MessageStatus.SENT}
            ),
            seconds=60,
            what="the redelivered task to send the ones never called",
        )
    assert set(outbox.filter(pk__in=marked).values_list("status", flat=True)) == {
        MessageStatus.SENDING
    }

    # The claim runs out: the provider may have them, so unknown, never back to the queue ...
    tick(now=now + CLAIM + MINUTE, send="inline")
    for message in outbox.filter(pk__in=marked):
        assert (message.status, message.status_reason) == (
            MessageStatus.UNKNOWN,
            "no answer from the provider",
        ), message.pk
    tick(now=now + CLAIM + 2 * MINUTE, send="inline")
    # ... and reconciliation finds them at the provider, with the sids the provider gave.
    assert messages_reconcile(now=now + CLAIM + 5 * MINUTE)["sent"] == called
    sids = dict(fake.accepted)
    for message in outbox.filter(pk__in=marked):
        assert (message.status, message.provider_id) == (MessageStatus.SENT, sids[message.pk])
    for pk in batch:
        assert fake.posts_for(pk) == 1, f"message {pk} was sent again"
    assert_each_step_accepted_once(fake, due_steps(campaign, [1]))


# --- Redis unavailable during a tick ---------------------------------------------------------


@pytest.fixture
def own_redis():
    """A redis-server of this test's own on a free port (never the shared one), with
    ``stop()`` and ``start()``; this process's Celery app publishes to it meanwhile."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (CI installs and starts it)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"

    class Server:
        process: subprocess.Popen | None = None

        def start(self) -> None:
            self.process = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=subprocess.DEVNULL,
            )
            wait_until(self.answers, seconds=10, what="redis-server to start")

        def stop(self) -> None:
            self.process.kill()  # gone at once, its queue with it (no persistence)
            self.process.wait(timeout=10)

        def answers(self) -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return True
            except OSError:
                return False

    server = Server()
    server.url = url
    server.start()
    names = ("broker_url", "broker_write_url", "broker_read_url")
    original = {name: celery_app.conf[name] for name in names}
    celery_app.conf.update(dict.fromkeys(names, url))
    celery_app._after_fork()  # drop the connection pools: publish to our server
    yield server
    celery_app.conf.update(original)
    celery_app._after_fork()
    if server.process.poll() is None:
        server.stop()


def test_redis_going_away_mid_tick_fails_the_tick_and_the_next_ticks_catch_up(
    start_fake, own_redis, monkeypatch, settings
):
    settings.SEND_TASK_BATCH_SIZE = 2  # six messages: three send tasks
    fake = start_fake()
    clinic = midday_practice()
    campaign = blast_now(clinic, 6)
    now = timezone.now()
    published: list[int] = []
    real_delay = send_messages_task.delay

    def delay_then_lose_redis(message_ids):
        real_delay(message_ids)
        published.append(message_ids)
        if len(published) == 2:
            own_redis.stop()  # two tasks handed over, then Redis is gone (and they with it)

    monkeypatch.setattr(send_messages_task, "delay", delay_then_lose_redis)

    with pytest.raises(OperationalError):
        tick(now=now, send="queue")

    # Loud: no heartbeat for the failed tick. Nothing half-sent: the six claims committed,
    # no provider call was made for any of them.
    assert not SchedulerHeartbeat.objects.filter(ticked_at=now).exists()
    outbox = OutboundMessage.objects.filter(campaign=campaign)
    assert set(outbox.values_list("status", "provider_called_at")) == {
        (MessageStatus.SENDING, None)
    }
    assert fake.accepted == []
    monkeypatch.undo()

    own_redis.start()  # back, empty
    with celery_worker(broker_url=own_redis.url, env=provider_env(fake)):
        # The claims hold for their time, so a tick a minute later sends nothing twice ...
        assert tick(now=now + MINUTE, send="queue")["messages_dispatched"] == 0
        # ... and once they run out the dispatcher recovers them (the provider was never
        # called: back to the queue) and hands them to Redis again.
        summary = tick(now=now + CLAIM + MINUTE, send="queue")
        assert summary["messages_dispatched"] == 6, summary
        wait_until(
            lambda: set(outbox.values_list("status", flat=True)) == {MessageStatus.SENT},
            seconds=60,
            what="the worker to send the recovered messages",
        )
    for message in outbox:
        assert list(message.events.order_by("pk").values_list("status", "reason"))[:4] == [
            (MessageStatus.QUEUED, ""),
            (MessageStatus.SENDING, ""),
            (MessageStatus.QUEUED, "claim expired before sending"),
            (MessageStatus.SENDING, ""),
        ]
    assert_each_step_accepted_once(fake, due_steps(campaign, [1]))
