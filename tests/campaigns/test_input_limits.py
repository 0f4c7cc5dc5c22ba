"""Campaign JSON and the campaign and report query parameters hold only what storage and the
engine can take (issue 13, item 6): a 400 naming the field, never a 500, nothing stored."""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest
from django.test import Client

from campaigns.forms.blasts import BlastForm
from campaigns.models import Campaign
from tests.factories import PracticeFactory

pytestmark = pytest.mark.django_db

JSON = "application/json"
NUL = "a\x00b"
SURROGATE = "a\ud800b"
SMS = {"channel": "sms", "body": "Hello"}
DRIP = {
    "name": "Birthday",
    "kind": "drip",
    "trigger": {"type": "birthday", "offset_days": 0},
    "schedule": {"frequency": "daily", "time": "10:00"},
    "messages": [SMS],
}
BLAST = {"name": "Closed Monday", "kind": "blast", "messages": [SMS]}


def create(client: Client, body) -> object:
    return client.post("/api/v1/campaigns", json.dumps(body), content_type=JSON)


def errors_of(response) -> dict:
    assert response.status_code == 400, response.content
    assert not Campaign.objects.exists()
    return response.json()["errors"]


def with_filters(**filters) -> dict:
    return {**DRIP, "filters": filters}


@pytest.mark.parametrize("nasty", [NUL, SURROGATE, "x" * 201])
@pytest.mark.parametrize(
    "filters",
    [
        lambda v: {"case_types": [v]},
        lambda v: {"insurance_companies": ["Acme", v]},
        lambda v: {"providers": {"names": [v], "match": "primary"}},
        lambda v: {"address": {"cities": [v]}},
        lambda v: {"tags": {"include": [v], "exclude": []}},
    ],
    ids=["case_types", "insurance_companies", "providers", "address", "tags"],
)
def test_filter_values_are_names_storage_can_hold(api, filters, nasty):
    body = with_filters(**filters(nasty))
    errors = errors_of(create(api, body))
    assert list(errors) == ["filters"]


def test_a_tag_filter_is_as_long_as_a_tag_can_be(api):
    assert list(errors_of(create(api, with_filters(tags={"include": ["t" * 101]})))) == ["filters"]
    response = create(api, with_filters(tags={"include": ["t" * 100]}))
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**DRIP, "name": NUL}, "name"),
        ({**DRIP, "name": SURROGATE}, "name"),
        ({**DRIP, "name": "n" * 201}, "name"),
        ({**DRIP, "messages": [{"channel": "sms", "body": SURROGATE}]}, "messages"),
        ({**DRIP, "messages": [{"channel": SURROGATE, "body": "Hi"}]}, "messages"),
        ({**DRIP, "kind": SURROGATE}, "kind"),
        ({**DRIP, "trigger": {"type": "birthday", SURROGATE: 1}}, "trigger"),
        ({**DRIP, "filters": {SURROGATE: []}}, "filters"),
        ({**DRIP, "schedule": {"frequency": "daily", "time": "10:00\x00"}}, "schedule"),
        ({**DRIP, "exclude_recent_days": 15.0}, "exclude_recent_days"),
        ({**DRIP, "exclude_recent_days": "15"}, "exclude_recent_days"),
        (
            {
                **DRIP,
                "trigger": {"type": "missed_appointment", "minutes_after": 15.0},
                "schedule": None,
            },
            "trigger",
        ),
        ({**DRIP, "trigger": {"type": "birthday", "offset_days": 1.0}}, "trigger"),
        ({**BLAST, "send_at": "2026-06-01T10:00:00"}, "send_at"),  # naive: was read as UTC
        ({**BLAST, "send_at": "9999-12-31T23:59:59-12:00"}, "send_at"),
        ({**BLAST, "send_at": "2026-06-01T10:00:00+23:59"}, "send_at"),
        ({**BLAST, "send_at": "2026-W22-1T10:00:00+00:00"}, "send_at"),
        ({**BLAST, "send_at": "1800-06-01T10:00:00+00:00"}, "send_at"),
    ],
)
def test_campaign_values_storage_cannot_hold_are_field_errors(api, body, field):
    errors = errors_of(create(api, body))
    assert field in errors, errors


def test_minutes_after_15_is_accepted_as_a_whole_number(api):
    body = {
        **DRIP,
        "trigger": {"type": "missed_appointment", "minutes_after": 15},
        "schedule": None,
    }
    response = create(api, body)
    assert response.status_code == 201, response.content
    assert response.json()["trigger"]["minutes_after"] == 15


def test_a_blast_send_at_with_its_offset_is_stored_as_that_instant(api):
    response = create(api, {**BLAST, "send_at": "2026-06-01T10:00:00-04:00"})
    assert response.status_code == 201, response.content
    assert Campaign.objects.get().send_at == dt.datetime(2026, 6, 1, 14, tzinfo=dt.UTC)


def test_a_patch_is_held_to_the_same_rules(api):
    response = create(api, BLAST)
    assert response.status_code == 201
    url = f"/api/v1/campaigns/{response.json()['id']}"
    patch = api.patch(url, json.dumps({"send_at": "2026-06-01T10:00:00"}), content_type=JSON)
    assert patch.status_code == 400
    assert list(patch.json()["errors"]) == ["send_at"]
    assert Campaign.objects.get().send_at is None


@pytest.mark.parametrize("depth", [40, 5000])
def test_json_nested_beyond_a_sane_depth_is_refused(api, depth):
    nested = "[" * depth + '"x"' + "]" * depth
    body = json.dumps({**DRIP, "filters": {"case_types": "NESTED"}}).replace('"NESTED"', nested)
    response = api.post("/api/v1/campaigns", body, content_type=JSON)
    assert response.status_code == 400, response.content[:200]
    assert "nested" in response.json()["errors"]["non_field_errors"][0]
    assert not Campaign.objects.exists()


def test_deep_json_from_the_wire_is_a_400_not_a_recursion_error(api):
    body = "[" * 100_000 + "]" * 100_000
    response = api.post("/api/v1/patients:bulk", body, content_type=JSON)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["non_field_errors"]


# --- query parameters -----------------------------------------------------------------------


@pytest.fixture
def campaign_id(api) -> int:
    response = create(api, DRIP)
    assert response.status_code == 201
    return response.json()["id"]


@pytest.mark.parametrize(
    "at",
    [
        "9999-12-31T23:59:59-12:00",
        "2026-05-14T12:00:00+23:59",
        "2026-05-14T12:00:00",
        "2026-W20-4T12:00:00+00:00",
        "0001-01-01T00:00:00+00:00",
    ],
)
@pytest.mark.parametrize("endpoint", ["audience", "explain"])
def test_at_is_an_instant_with_an_offset_in_range(api, campaign_id, endpoint, at):
    api.put("/api/v1/patients/P1", {}, content_type=JSON)
    response = api.get(f"/api/v1/campaigns/{campaign_id}/{endpoint}", {"at": at, "patient": "P1"})
    assert response.status_code == 400, response.content
    assert list(response.json()["errors"]) == ["at"]


def test_an_unencoded_plus_offset_still_reads(api, campaign_id):
    response = api.get(f"/api/v1/campaigns/{campaign_id}/audience?at=2026-05-14T12:00:00+05:00")
    assert response.status_code == 200
    assert response.json()["at"] == "2026-05-14T12:00:00+05:00"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to": "0001-01-01"}, "to"),  # the default start, 29 days earlier, overflowed
        ({"from": "9999-12-31", "to": "9999-12-31"}, "from"),
        ({"from": "2026-W01-1"}, "from"),
        ({"to": "20260101"}, "to"),
    ],
)
def test_report_dates_are_calendar_dates_in_range(api, campaign_id, params, field):
    response = api.get(f"/api/v1/campaigns/{campaign_id}/report", params)
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"campaign": "15.0"}, "campaign"),
        ({"campaign": "99999999999999999999999"}, "campaign"),
        ({"patient": "p" * 65}, "patient"),
    ],
)
def test_message_filters_are_checked(api, params, field):
    response = api.get("/api/v1/messages", params)
    assert response.status_code == 400, response.content
    assert list(response.json()["errors"]) == [field]


# --- the blast form reads a local time, within the same years --------------------------------


def test_the_blast_form_refuses_a_send_time_beyond_2100():
    practice = PracticeFactory()
    data = {
        "name": "Far",
        "channel": "sms",
        "body": "Hi",
        "send_mode": "at",
        "send_at": "9999-12-31T23:59",
    }
    form = BlastForm(data, practice=practice, now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert not form.is_valid()
    assert list(form.errors) == ["send_at"]


def test_the_example_campaign_still_validates(api):
    body = copy.deepcopy(DRIP)
    assert create(api, body).status_code == 201
