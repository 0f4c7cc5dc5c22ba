"""Fault: one provider event delivered fifty times, at once (issue 9).

The same correctly signed Twilio status callback ("delivered") is POSTed fifty times over
real HTTP to the running app (``live_server``, a threaded server: the requests are handled
side by side, each on its own database connection), ten at a time. It must be applied once:
one MessageEvent, the message delivered, and the report counting one send and one delivery.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest
import requests
from celery._state import _set_task_join_will_block
from twilio.request_validator import RequestValidator

from campaigns.engine import tick
from messaging.models import MessageEvent, MessageStatus, OutboundMessage
from reports.rollup import rollups_refresh
from reports.selectors import campaign_report
from tests.campaigns.builders import Clinic
from tests.faults.conftest import (
    AUTH_TOKEN,
    RUN_AT,
    assert_each_step_accepted_once,
    birthday_patients,
    birthday_spec,
    campaign_for,
    due_steps,
    needs_postgres,
)
from trackstat.celery import app as celery_app

pytestmark = [needs_postgres, pytest.mark.django_db(transaction=True)]

DELIVERIES = 50


@pytest.fixture
def tasks_in_the_request():
    """The webhook hands the event to a Celery task; here it runs in the request's thread,
    so the fifty applications race each other as fifty workers' would."""
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = eager
    # An eager task sets Celery's process-wide "a join would block" flag while it runs and
    # restores the value it found; eager tasks in parallel threads can restore one another's
    # True, leaving it set, and a later result.get() in this process would then refuse.
    _set_task_join_will_block(False)


def test_one_status_callback_delivered_fifty_times_at_once_counts_once(
    settings, live_server, start_fake, tasks_in_the_request
):
    settings.PUBLIC_BASE_URL = live_server.url
    fake = start_fake()
    clinic = Clinic()
    birthday_patients(clinic, 1)
    campaign = campaign_for(clinic.practice, birthday_spec(steps=1))
    assert tick(now=RUN_AT, send="inline")["messages_sent"] == 1
    message = OutboundMessage.objects.get()
    assert message.status == MessageStatus.SENT

    url = f"{live_server.url}/webhooks/twilio/status?outbox={message.pk}"
    form = {
        "MessageSid": message.provider_id,
        "SmsSid": message.provider_id,
        "AccountSid": settings.TWILIO_ACCOUNT_SID,
        "MessageStatus": "delivered",
        "To": message.to,
        "From": clinic.practice.sms_from,
        "ApiVersion": "2010-04-01",
    }
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)

    def deliver(_attempt: int) -> int:
        return requests.post(
            url,
            data=urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
            timeout=30,
        ).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(deliver, range(DELIVERIES)))

    assert answers == [204] * DELIVERIES, f"answers: {sorted(set(answers))}"
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    delivered = MessageEvent.objects.filter(message=message, status=MessageStatus.DELIVERED)
    assert list(delivered.values_list("source", "provider_event_id")) == [
        ("webhook", f"twilio:{message.provider_id}:delivered")
    ], "the event was applied more than once"
    assert list(message.events.values_list("status", flat=True)) == [
        MessageStatus.QUEUED,
        MessageStatus.SENDING,
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
    ]

    rollups_refresh()
    day = RUN_AT.date()
    totals = campaign_report(campaign, date_from=day, date_to=day + dt.timedelta(days=1)).totals
    assert (totals.recipients, totals.sent, totals.delivered, totals.errors) == (1, 1, 1, 0), totals
    assert totals.delivered_percent == 100.0
    assert_each_step_accepted_once(fake, due_steps(campaign, [1]))
