"""models_insert stores what bulk_create would, and sets the ids."""

from __future__ import annotations

import pytest
from django.db import DataError, connection
from django.forms.models import model_to_dict

from messaging.models import Channel, MessageStatus, OutboundMessage, TrackedLink
from tests.campaigns.builders import Clinic, ny
from trackstat.bulk import models_insert

pytestmark = pytest.mark.django_db

SKIP = {"id", "created_at", "updated_at"}


def messages(clinic: Clinic, patient) -> list[OutboundMessage]:
    return [
        OutboundMessage(
            practice=clinic.practice,
            patient=patient,
            channel=Channel.SMS,
            to="+13125550123",
            body=f"Hello {n}: ünïcode",
            status=MessageStatus.QUEUED if n else MessageStatus.SKIPPED,
            status_reason="" if n else "no_phone",
            variant="A" if n else None,
            scheduled_for=ny(2026, 6, 15, 10, n),
            local_day=ny(2026, 6, 15).date() if n else None,
        )
        for n in range(3)
    ]


def stored(objs) -> list[dict]:
    return [
        {k: v for k, v in model_to_dict(type(o).objects.get(pk=o.pk)).items() if k not in SKIP}
        for o in objs
    ]


def test_the_rows_match_bulk_create_and_the_ids_are_set_in_order():
    clinic = Clinic()
    patient = clinic.patient(phone="3125550123")
    ours, django = messages(clinic, patient), messages(clinic, patient)
    models_insert(ours)
    OutboundMessage.objects.bulk_create(django)
    assert all(o.pk for o in ours)
    assert [
        o.body for o in OutboundMessage.objects.filter(pk__in=[o.pk for o in ours]).order_by("pk")
    ] == [o.body for o in ours]
    assert stored(ours) == stored(django)
    row = OutboundMessage.objects.get(pk=ours[0].pk)
    assert row.created_at is not None
    assert row.updated_at is not None
    assert not ours[0]._state.adding


def test_a_related_instance_saved_after_it_was_assigned_gives_its_id():
    clinic = Clinic()
    patient = clinic.patient(phone="3125550123")
    message = messages(clinic, patient)[1]
    link = TrackedLink(practice=clinic.practice, message=message, token="t" * 32, url="https://x")
    models_insert([message])
    models_insert([link])
    assert TrackedLink.objects.get(pk=link.pk).message_id == message.pk


def test_nothing_to_insert_runs_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        models_insert([])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite does not refuse it")
def test_a_refused_row_raises_an_error_that_names_the_table_and_not_the_value():
    clinic = Clinic()
    patient = clinic.patient(phone="3125550123")
    message = messages(clinic, patient)[1]
    message.subject = "Zebediah Quintessa-Marlowe " * 10  # past the column's 200 characters
    with pytest.raises(DataError) as refused:
        models_insert([message])
    assert "messaging_outboundmessage" in str(refused.value)
    assert "too long" in str(refused.value)
    assert "Zebediah" not in str(refused.value)
    assert refused.value.__suppress_context__
