"""Report numbers from the roll-ups (issue 7), for a fixture whose every number is stated.

The fixture drives the real services the webhooks and pages use: Twilio status callbacks
(one twice, one late), SendGrid events (a click before the open, a duplicate open), an
inbound STOP delivered twice, an unsubscribe link, goals met, and a staff test send that must
not count. The practice is in New York; a text sent at 23:30 local counts on its local day.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random

import pytest
from django.db import connection

from campaigns.engine.goals import enrollments_exit
from campaigns.models import Campaign, CampaignKind, Enrollment, MessageStep
from messaging.links import link_click, patient_unsubscribe
from messaging.models import MessageStatus, OutboundMessage, TrackedLink
from messaging.outbox.status import message_transition
from messaging.webhook_services import (
    sendgrid_event_apply,
    twilio_inbound_receive,
    twilio_status_apply,
)
from reports import rollup
from reports.models import NO_STEP, RecipientDay
from reports.rollup import rollups_refresh
from reports.selectors import campaign_report, practice_overview
from tests.campaigns.builders import ny
from tests.factories import PatientFactory, PracticeFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True, params=["set-wise", "per-message"])
def counting(request, monkeypatch):
    """Every test runs with both ways of counting a batch: the set-based SQL (PostgreSQL's)
    and the per-message Python (every database's), which must give the same numbers."""
    if request.param == "set-wise" and connection.vendor != "postgresql":
        pytest.skip("the set-based roll-up is PostgreSQL's")
    monkeypatch.setattr(rollup, "set_wise", lambda: request.param == "set-wise")
    return request.param


NOV2, NOV3, NOV4 = dt.date(2026, 11, 2), dt.date(2026, 11, 3), dt.date(2026, 11, 4)


class Fixture:
    """Campaign "Welcome": step 1 SMS, step 2 email; six patients; eleven messages."""

    def __init__(self, *, refresh_each_step: bool):
        self.refresh_each_step = refresh_each_step
        self.practice = PracticeFactory(
            time_zone="America/New_York", sms_from="+13125559999", phone="+13125550100"
        )
        self.campaign = Campaign.objects.create(
            practice=self.practice, name="Welcome", kind=CampaignKind.DRIP, enabled=True
        )
        for position, channel in ((1, "sms"), (2, "email")):
            MessageStep.objects.create(
                practice=self.practice,
                campaign=self.campaign,
                position=position,
                channel=channel,
                subject="Hello" if channel == "email" else "",
                body="Hi",
            )
        self.p = {
            n: PatientFactory(
                practice=self.practice, phone=f"+1312555010{n}", email=f"p{n}@example.test"
            )
            for n in range(1, 7)
        }
        self.enrollment = {
            n: Enrollment.objects.create(
                practice=self.practice,
                campaign=self.campaign,
                patient=patient,
                occurrence_key="welcome",
                entered_at=ny(2026, 11, 1, 10),
            )
            for n, patient in self.p.items()
        }
        self._sids = itertools.count(1)

    def step(self) -> None:
        if self.refresh_each_step:
            rollups_refresh()

    def message(self, n: int, position: int, due: dt.datetime, **fields) -> OutboundMessage:
        channel = "sms" if position == 1 else "email"
        message = OutboundMessage.objects.create(
            practice=self.practice,
            enrollment=self.enrollment[n] if not fields.get("is_test") else None,
            campaign=self.campaign,
            step_position=position,
            patient=self.p[n],
            channel=channel,
            to=self.p[n].phone if channel == "sms" else self.p[n].email,
            body="Hi",
            scheduled_for=due,
            **fields,
        )
        self.step()
        return message

    def send(self, message: OutboundMessage, at: dt.datetime) -> OutboundMessage:
        message_transition(message, status=MessageStatus.SENDING, at=at, source="engine")
        self.step()
        message_transition(
            message,
            status=MessageStatus.SENT,
            at=at,
            source="provider",
            fields={"sent_at": at, "provider_id": f"SM{next(self._sids)}", "provider": "twilio"},
        )
        self.step()
        return message

    def twilio(self, message: OutboundMessage, status: str, at: dt.datetime, **extra) -> None:
        params = {"MessageSid": message.provider_id, "MessageStatus": status, **extra}
        twilio_status_apply(outbox_id=str(message.pk), params=params, now=at)
        self.step()

    def sendgrid(self, message: OutboundMessage, kind: str, event_id: str, at) -> None:
        event = {
            "event": kind,
            "outbox_id": str(message.pk),
            "sg_event_id": event_id,
            "timestamp": int(at.timestamp()),
        }
        sendgrid_event_apply(event=event, now=at)
        self.step()


def build(*, refresh_each_step: bool) -> Fixture:
    f = Fixture(refresh_each_step=refresh_each_step)
    # Nov 2 — step 1 texts.
    m1 = f.send(f.message(1, 1, ny(2026, 11, 2, 10)), ny(2026, 11, 2, 10))
    f.twilio(m1, "delivered", ny(2026, 11, 2, 10, 1))
    f.twilio(m1, "delivered", ny(2026, 11, 2, 10, 2))  # the same callback again
    f.twilio(m1, "sent", ny(2026, 11, 2, 10, 3))  # late: never moves it back
    m2 = f.send(f.message(2, 1, ny(2026, 11, 2, 23, 30)), ny(2026, 11, 2, 23, 30))  # 04:30 UTC
    f.twilio(m2, "undelivered", ny(2026, 11, 3, 0, 10), ErrorCode="30003")
    m3 = f.message(3, 1, ny(2026, 11, 2, 10), status="skipped", status_reason="no phone number")
    m4 = f.send(f.message(4, 1, ny(2026, 11, 2, 10)), ny(2026, 11, 2, 10))
    f.twilio(m4, "delivered", ny(2026, 11, 2, 10, 1))
    stop = {"MessageSid": "SMstop4", "From": f.p[4].phone, "To": "+13125559999", "Body": "STOP"}
    twilio_inbound_receive(params=stop, now=ny(2026, 11, 2, 12))
    f.step()
    twilio_inbound_receive(params=stop, now=ny(2026, 11, 2, 12, 1))  # redelivered
    f.step()
    # A staff member's test send of step 1, delivered: never counted.
    test = f.send(f.message(1, 1, ny(2026, 11, 2, 9), is_test=True), ny(2026, 11, 2, 9))
    f.twilio(test, "delivered", ny(2026, 11, 2, 9, 1))
    # Nov 3 — step 2 emails, and a text the provider refused.
    m5 = f.send(f.message(1, 2, ny(2026, 11, 3, 10)), ny(2026, 11, 3, 10))
    link = TrackedLink.objects.create(
        practice=f.practice, message=m5, token="tok5", url="https://spine.example/book"
    )
    f.sendgrid(m5, "click", "ev5-click", ny(2026, 11, 3, 10, 5))  # before the open and delivery
    f.sendgrid(m5, "open", "ev5-open", ny(2026, 11, 3, 10, 4))
    f.sendgrid(m5, "delivered", "ev5-delivered", ny(2026, 11, 3, 10, 1))
    f.sendgrid(m5, "open", "ev5-open", ny(2026, 11, 3, 10, 4))  # duplicate event id
    link_click(token=link.token, now=ny(2026, 11, 3, 10, 6))  # the tracked link itself
    f.step()
    m6 = f.send(f.message(4, 2, ny(2026, 11, 3, 10)), ny(2026, 11, 3, 10))
    f.sendgrid(m6, "bounce", "ev6-bounce", ny(2026, 11, 3, 10, 2))
    m8 = f.message(5, 1, ny(2026, 11, 3, 10))
    message_transition(m8, status=MessageStatus.SENDING, at=ny(2026, 11, 3, 10), source="engine")
    message_transition(
        m8,
        status=MessageStatus.FAILED,
        reason="provider error 21211",
        at=ny(2026, 11, 3, 10),
        source="provider",
    )
    f.step()
    # Nov 4 — an email, its unsubscribe link, and two goals met.
    m7 = f.send(f.message(2, 2, ny(2026, 11, 4, 10)), ny(2026, 11, 4, 10))
    f.sendgrid(m7, "delivered", "ev7-delivered", ny(2026, 11, 4, 10, 1))
    patient_unsubscribe(message=m7)
    f.step()
    patient_unsubscribe(message=m7)  # the link used twice
    f.step()
    f.message(6, 1, ny(2026, 11, 4, 10))  # queued; the goal is met before it goes out
    enrollments_exit(enrollment_ids=[f.enrollment[6].pk], reason="goal_met", now=ny(2026, 11, 4, 9))
    f.step()
    enrollments_exit(
        enrollment_ids=[f.enrollment[1].pk], reason="goal_met", now=ny(2026, 11, 4, 12)
    )
    f.step()
    f.m = {1: m1, 2: m2, 3: m3, 4: m4, 5: m5, 6: m6, 7: m7, 8: m8}
    rollups_refresh()
    return f


def numbers(n) -> dict:
    return {
        "recipients": n.recipients,
        "sent": n.sent,
        "delivered": n.delivered,
        "delivered_percent": n.delivered_percent,
        "opened": n.opened,
        "clicked": n.clicked,
        "errors": n.errors,
        "bounced": n.bounced,
        "unsubscribed": n.unsubscribed,
        "conversions": n.conversions,
        "conversion_percent": n.conversion_percent,
        "skipped": n.skipped,
    }


WHOLE_RANGE_TOTALS = {
    "recipients": 3,  # patients 1, 2 and 4 (5 failed, 3 skipped, 6 canceled: never sent)
    "sent": 6,  # m1 m2 m4 (texts), m5 m6 m7 (emails)
    "delivered": 4,  # m1 m4 m5 m7
    "delivered_percent": 66.7,
    "opened": 1,  # m5 (its click came first)
    "clicked": 1,  # m5, clicked through SendGrid and the tracked link: once
    "errors": 2,  # m2 undelivered, m8 failed at the provider
    "bounced": 1,  # m6
    "unsubscribed": 2,  # m4 (STOP, twice), m7 (the link, twice)
    "conversions": 2,  # patients 6 and 1
    "conversion_percent": 66.7,  # 2 of 3 recipients
    "skipped": 2,  # m3 skipped (no phone number), patient 6's text canceled (goal met)
}


@pytest.mark.parametrize("refresh_each_step", [False, True], ids=["refresh-once", "refresh-each"])
def test_every_number_of_the_fixture(refresh_each_step):
    f = build(refresh_each_step=refresh_each_step)

    report = campaign_report(f.campaign, date_from=NOV2, date_to=NOV4)

    assert numbers(report.totals) == WHOLE_RANGE_TOTALS
    by_step = {step.position: step for step in report.steps}
    assert list(by_step) == [0, 1, 2]
    assert by_step[0].label == "Before the first message"
    assert numbers(by_step[0].numbers) == {
        **dict.fromkeys(WHOLE_RANGE_TOTALS, 0),
        "delivered_percent": None,
        "conversion_percent": None,
        "conversions": 1,  # patient 6 met the goal before their first text went out
    }
    assert numbers(by_step[1].numbers) == {
        "recipients": 3,
        "sent": 3,
        "delivered": 2,
        "delivered_percent": 66.7,
        "opened": 0,
        "clicked": 0,
        "errors": 2,
        "bounced": 0,
        "unsubscribed": 1,
        "conversions": 0,
        "conversion_percent": 0.0,
        "skipped": 2,
    }
    assert numbers(by_step[2].numbers) == {
        "recipients": 3,
        "sent": 3,
        "delivered": 2,
        "delivered_percent": 66.7,
        "opened": 1,
        "clicked": 1,
        "errors": 0,
        "bounced": 1,
        "unsubscribed": 1,
        "conversions": 1,  # patient 1, after their email
        "conversion_percent": 33.3,
        "skipped": 0,
    }
    assert [(s.status, s.reason, s.count) for s in report.skipped] == [
        ("canceled", "goal met", 1),
        ("skipped", "no phone number", 1),
    ]
    assert [(s.status, s.reason, s.count) for s in by_step[1].skipped] == [
        ("canceled", "goal met", 1),
        ("skipped", "no phone number", 1),
    ]
    daily = {row.day: numbers(row.numbers) for row in report.days}
    assert daily[NOV2] == {
        "recipients": 0,  # the chart shows messages; recipients are distinct over the range
        "sent": 3,  # m1, m4, and m2 at 23:30 New York time (04:30 UTC on Nov 3)
        "delivered": 2,
        "delivered_percent": 66.7,
        "opened": 0,
        "clicked": 0,
        "errors": 1,  # m2: undelivered after midnight, counted on its sending day
        "bounced": 0,
        "unsubscribed": 1,
        "conversions": 0,
        "conversion_percent": None,
        "skipped": 1,
    }
    assert (daily[NOV3]["sent"], daily[NOV3]["delivered"], daily[NOV3]["errors"]) == (2, 1, 1)
    assert (daily[NOV3]["opened"], daily[NOV3]["clicked"], daily[NOV3]["bounced"]) == (1, 1, 1)
    assert (daily[NOV4]["sent"], daily[NOV4]["delivered"], daily[NOV4]["unsubscribed"]) == (
        1,
        1,
        1,
    )
    assert (daily[NOV4]["conversions"], daily[NOV4]["skipped"]) == (2, 1)


def test_sub_ranges_count_recipients_once_each():
    f = build(refresh_each_step=False)

    def totals(start, end):
        return numbers(campaign_report(f.campaign, date_from=start, date_to=end).totals)

    nov3 = totals(NOV3, NOV3)
    assert (nov3["recipients"], nov3["sent"], nov3["delivered"], nov3["errors"]) == (2, 2, 1, 1)
    assert (nov3["unsubscribed"], nov3["conversions"], nov3["skipped"]) == (0, 0, 0)
    # Patients 1 and 4 on Nov 3, patient 2 on Nov 4 (their Nov 2 text is outside the range).
    assert totals(NOV3, NOV4)["recipients"] == 3
    assert totals(NOV4, NOV4)["recipients"] == 1
    # Patients 1, 2 and 4 on Nov 2; patients 1 and 4 again on Nov 3: still three people.
    assert totals(NOV2, NOV3)["recipients"] == 3
    assert totals(dt.date(2026, 11, 5), dt.date(2026, 11, 30))["sent"] == 0


def test_test_sends_and_other_campaigns_are_not_counted():
    f = build(refresh_each_step=False)
    test = OutboundMessage.objects.get(is_test=True)
    assert test.status == MessageStatus.DELIVERED
    assert test.report_pending  # never picked up: test sends are not counted
    Campaign.objects.create(practice=f.practice, name="Other", enabled=True)

    overview = practice_overview(f.practice, date_from=NOV2, date_to=NOV4)

    rows = {row.campaign.name: numbers(row.numbers) for row in overview}
    assert rows["Welcome"] == WHOLE_RANGE_TOTALS
    assert rows["Other"]["sent"] == 0


def test_another_practice_sees_none_of_it():
    f = build(refresh_each_step=False)
    elsewhere = PracticeFactory()
    assert practice_overview(elsewhere, date_from=NOV2, date_to=NOV4) == []
    assert RecipientDay.objects.filter(practice=elsewhere).count() == 0
    assert RecipientDay.objects.filter(practice=f.practice).count() == 12


def test_a_second_refresh_changes_nothing():
    f = build(refresh_each_step=False)
    before = numbers(campaign_report(f.campaign, date_from=NOV2, date_to=NOV4).totals)
    assert rollups_refresh() == 0
    # Marking everything pending again (as a replayed event would) counts nothing twice.
    OutboundMessage.objects.update(report_pending=True)
    rollups_refresh()
    assert numbers(campaign_report(f.campaign, date_from=NOV2, date_to=NOV4).totals) == before


def test_recipients_match_a_brute_force_count_whatever_the_arrival_order():
    """Patients get messages on random days, counted in random order over several roll-up
    runs; every range's recipient count equals counting distinct patients directly."""
    rng = random.Random(7)
    practice = PracticeFactory(time_zone="UTC")
    campaign = Campaign.objects.create(practice=practice, name="Random", enabled=True)
    MessageStep.objects.create(
        practice=practice, campaign=campaign, position=1, channel="sms", body="Hi"
    )
    patients = [PatientFactory(practice=practice) for _ in range(6)]
    start = dt.date(2026, 1, 1)
    sends = [
        (rng.choice(patients), start + dt.timedelta(days=rng.randrange(12))) for _ in range(40)
    ]
    rng.shuffle(sends)
    for index, (patient, day) in enumerate(sends):
        at = dt.datetime.combine(day, dt.time(10), tzinfo=dt.UTC)
        OutboundMessage.objects.create(
            practice=practice,
            campaign=campaign,
            step_position=1,
            patient=patient,
            channel="sms",
            to="+13125550100",
            status=MessageStatus.SENT,
            sent_at=at,
            scheduled_for=at,
        )
        if index % 7 == 0:
            rollups_refresh(batch=3)
    rollups_refresh(batch=5)
    for first in range(12):
        for last in range(first, 12):
            date_from = start + dt.timedelta(days=first)
            date_to = start + dt.timedelta(days=last)
            expected = len({p.pk for p, day in sends if date_from <= day <= date_to})
            report = campaign_report(campaign, date_from=date_from, date_to=date_to)
            assert report.totals.recipients == expected, (date_from, date_to)
            assert report.steps[0].numbers.recipients == expected
            assert report.totals.sent == sum(date_from <= day <= date_to for _, day in sends)
    # Each recipient day names the patient's previous day, at both levels (campaign, step).
    expected_days = {}
    for patient in patients:
        days = sorted({day for p, day in sends if p == patient})
        for level in (NO_STEP, 1):
            for previous, day in zip([None, *days], days, strict=False):
                expected_days[(level, patient.pk, day)] = previous
    stored = {
        (r.step_position, r.patient_id, r.day): r.prev_day
        for r in RecipientDay.objects.filter(campaign=campaign)
    }
    assert stored == expected_days
