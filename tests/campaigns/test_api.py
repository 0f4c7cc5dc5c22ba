"""REST API v1 contract tests for the campaign endpoints (DESIGN §4.1, §5)."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from django.test import Client

from campaigns import services
from campaigns.language.spec import CampaignSerializer
from campaigns.models import Campaign, MessageStep
from trackstat.models import AuditEvent, Role
from trackstat.services import api_key_create

pytestmark = pytest.mark.django_db

# DESIGN §5, verbatim.
EXAMPLE = {
    "name": "Reactivation 6 months",
    "kind": "drip",
    "enabled": True,
    "trigger": {
        "type": "last_visit_checked_in",
        "when": "days_ago",
        "days": 180,
        "match": "at_least",
    },
    "filters": {
        "tags": {"include": [], "exclude": ["not qualified", "moved"]},
        "status": "active",
        "has_future_appointment": False,
        "case_types": ["Personal Injury"],
    },
    "schedule": {"frequency": "daily", "time": "10:00"},
    "exclude_recent_days": 30,
    "messages": [
        {
            "channel": "sms",
            "body": "Hi {{PatientFirstName}}, we miss you! Book: {{OnlineSchedulingLink}}",
            "delay": {"value": 0, "unit": "days"},
        },
        {
            "channel": "email",
            "subject": "Time for a check-up?",
            "body": "<p>…</p>",
            "delay": {"value": 3, "unit": "days"},
        },
    ],
    "goal": {
        "type": "future_appointment",
        "filters": {"appointment_purposes": [], "providers": []},
    },
}

SMS = {"channel": "sms", "body": "Happy birthday, {{PatientFirstName}}!"}
EMAIL = {"channel": "email", "subject": "Hello", "body": "<p>Hi {{PatientFirstName}}</p>"}
SERVER_FIELDS = {"id", "send_at", "sent_at", "created_at", "updated_at"}

# 16:00 UTC on 14 May 2026 is noon in the practices' America/New_York.
AT = "2026-05-14T16:00:00+00:00"


def drip(**changes) -> dict:
    """A valid one-step birthday drip, with ``changes`` applied."""
    return {
        "name": "Birthday",
        "kind": "drip",
        "trigger": {"type": "birthday", "offset_days": 0},
        "schedule": {"frequency": "daily", "time": "10:00"},
        "messages": [SMS],
        **changes,
    }


def blast(**changes) -> dict:
    return {"name": "Closed Monday", "kind": "blast", "messages": [SMS], **changes}


def send(client: Client, method: str, url: str, body=None):
    return getattr(client, method)(url, body, content_type="application/json")


def create(client: Client, body: dict) -> dict:
    response = send(client, "post", "/api/v1/campaigns", body)
    assert response.status_code == 201, response.content
    return response.json()


def make_campaign(practice, body: dict) -> Campaign:
    serializer = CampaignSerializer(data=body)
    serializer.is_valid(raise_exception=True)
    return services.campaign_create(practice=practice, data=serializer.validated_data, actor="test")


def without_server_fields(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in SERVER_FIELDS}


def key_client(practice) -> Client:
    key = api_key_create(practice=practice, name="EMR").secret
    return Client(headers={"Authorization": f"Api-Key {key}"})


def put_patients(api: Client, patients: dict[str, dict]) -> None:
    for external_id, fields in patients.items():
        response = send(api, "put", f"/api/v1/patients/{external_id}", fields)
        assert response.status_code == 201, response.content


# --- create and read back -------------------------------------------------------------------


@pytest.mark.parametrize(
    "trigger",
    [
        {"type": "birthday", "offset_days": 0},
        {"type": "birthday", "offset_days": -3},
        {"type": "first_visit", "days_after": 0},
        {"type": "first_visit", "days_after": 14},
        {"type": "anniversary", "offset_days": 0},
        {"type": "anniversary", "offset_days": 2, "years": [1, 5, 10]},
        {"type": "scheduled_appointment", "when": "booked"},
        {"type": "scheduled_appointment", "when": "days_before", "days": 1},
        {"type": "last_visit_checked_in", "when": "today", "hours_after": 2},
        {"type": "last_visit_checked_in", "when": "yesterday"},
        {"type": "last_visit_checked_in", "when": "days_ago", "days": 180, "match": "at_least"},
        {"type": "last_visit_checked_in", "when": "days_ago", "days": 30, "match": "exact"},
        {"type": "last_visit_scheduled", "when": "days_ago", "days": 30, "match": "at_least"},
        {"type": "missed_appointment", "minutes_after": 25},
    ],
    ids=lambda trigger: "-".join(str(v) for v in trigger.values()),
)
def test_each_trigger_is_stored_and_read_back_as_sent(api, practice, trigger):
    created = create(api, drip(trigger=trigger))
    assert created["trigger"] == trigger
    assert isinstance(created["id"], int)
    read = api.get(f"/api/v1/campaigns/{created['id']}").json()
    assert read == created
    assert Campaign.objects.get(pk=created["id"], practice=practice).trigger == trigger


def test_the_design_example_round_trips(api):
    created = create(api, EXAMPLE)
    expected = copy.deepcopy(EXAMPLE)
    # The two normalisations of the stored form: an SMS has an empty subject, and empty goal
    # filter lists (which do not narrow) are dropped.
    expected["messages"][0]["subject"] = ""
    expected["goal"]["filters"] = {}
    # The experiment settings it leaves out take their defaults (DESIGN §5.9).
    expected |= {"holdout_percent": 0, "attribution_days": 30}
    # The example names no purpose: a reactivation is marketing by default (DESIGN §5.8).
    expected |= {"purpose": "marketing", "priority": 0}
    assert without_server_fields(created) == expected
    assert created["send_at"] is None
    assert created["sent_at"] is None

    url = f"/api/v1/campaigns/{created['id']}"
    read = api.get(url).json()
    assert read == created
    # What GET answers, PUT back, changes nothing (and audits nothing).
    audits = AuditEvent.objects.count()
    again = send(api, "put", url, read)
    assert again.status_code == 200
    assert without_server_fields(again.json()) == without_server_fields(read)
    assert AuditEvent.objects.count() == audits


def test_blast_round_trips_and_put_clears_what_it_leaves_out(api):
    created = create(api, blast(send_at="2026-05-20T14:00:00Z", filters={"status": "active"}))
    assert created["kind"] == "blast"
    assert (created["trigger"], created["schedule"], created["goal"]) == (None, None, None)
    assert created["filters"] == {"status": "active"}
    assert dt.datetime.fromisoformat(created["send_at"]) == dt.datetime(
        2026, 5, 20, 14, 0, tzinfo=dt.UTC
    )
    # A replace without send_at sends as soon as enabled.
    url = f"/api/v1/campaigns/{created['id']}"
    assert send(api, "put", url, blast()).json()["send_at"] is None


def test_email_html_is_sanitized(api):
    body = '<p>Hi <a href="https://example.test/x">there</a></p><script>alert(1)</script>'
    created = create(api, drip(messages=[{**EMAIL, "body": body}]))
    stored = MessageStep.objects.get(campaign_id=created["id"]).body
    assert "<script" not in stored
    assert "alert" not in stored
    assert '<a href="https://example.test/x"' in stored
    assert created["messages"][0]["body"] == stored


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (drip(trigger={"type": "horoscope"}), ["trigger", "type"]),
        (drip(trigger={"type": "birthday", "offset_days": 0, "days": 3}), ["trigger", "days"]),
        (
            drip(trigger={"type": "scheduled_appointment", "when": "days_before"}),
            ["trigger", "days"],
        ),
        (
            drip(trigger={"type": "missed_appointment", "minutes_after": 45}),
            ["trigger", "minutes_after"],
        ),
        (drip(trigger={"type": "last_visit_checked_in"}), ["trigger", "when"]),
        (drip(filters={"zodiac": ["leo"]}), ["filters", "zodiac"]),
        (drip(filters={"status": "asleep"}), ["filters", "status"]),
        (drip(schedule={"frequency": "daily", "time": "25:00"}), ["schedule", "time"]),
        (drip(schedule={"frequency": "weekly", "time": "10:00"}), ["schedule", "weekdays"]),
        (
            drip(schedule={"frequency": "monthly", "time": "10:00", "day": 32}),
            ["schedule", "day"],
        ),
        (drip(messages=[{**SMS, "body": "Hi {{UnsubscribeLink}}"}]), ["messages", 0, "body"]),
        (
            drip(messages=[{**SMS, "body": "See you {{AppointmentDate}}"}]),
            ["messages", 0, "body"],
        ),
        (drip(messages=[{**EMAIL, "subject": ""}]), ["messages", 0, "subject"]),
        (drip(messages=[{"channel": "fax", "body": "Hi"}]), ["messages", 0, "channel"]),
        (drip(messages=[]), ["messages"]),
        (drip(goal={"type": "future_appointment"}), ["goal"]),
        (drip(trigger=None), ["trigger"]),
        (drip(send_at="2026-05-20T14:00:00Z"), ["send_at"]),
        (drip(name=""), ["name"]),
        (blast(trigger={"type": "birthday", "offset_days": 0}), ["trigger"]),
        (blast(messages=[SMS, SMS]), ["messages"]),
    ],
)
def test_invalid_campaign_is_400_naming_the_field_and_stores_nothing(api, body, path):
    response = send(api, "post", "/api/v1/campaigns", body)
    assert response.status_code == 400
    error = response.json()["errors"]
    for part in path:
        error = error[part]
    assert error
    assert all(isinstance(message, str) for message in error)
    assert not Campaign.objects.exists()


def test_unknown_merge_field_is_named_at_its_step(api):
    body = drip(
        messages=[SMS, {**SMS, "body": "Hi {{Foo}}", "delay": {"value": 1, "unit": "days"}}]
    )
    response = send(api, "post", "/api/v1/campaigns", body)
    assert response.status_code == 400
    steps = response.json()["errors"]["messages"]
    assert steps[0] == {}
    assert any("{{Foo}}" in message for message in steps[1]["body"])


def test_appointment_merge_fields_are_fine_with_an_appointment_trigger(api):
    created = create(
        api,
        drip(
            trigger={"type": "scheduled_appointment", "when": "days_before", "days": 1},
            messages=[{**SMS, "body": "See you {{AppointmentDate}} at {{AppointmentTime}}"}],
        ),
    )
    assert "{{AppointmentDate}}" in created["messages"][0]["body"]


def test_body_must_be_an_object(api):
    response = send(api, "post", "/api/v1/campaigns", [drip()])
    assert response.status_code == 400
    assert "non_field_errors" in response.json()["errors"]


# --- replace, patch, delete ------------------------------------------------------------------


def test_put_replaces_the_whole_campaign_and_its_steps(api):
    created = create(
        api,
        drip(
            messages=[SMS, {**EMAIL, "delay": {"value": 3, "unit": "days"}}],
            goal={"type": "clicked_link"},
            filters={"status": "active"},
        ),
    )
    url = f"/api/v1/campaigns/{created['id']}"
    response = send(api, "put", url, drip(name="Birthday v2", messages=[EMAIL]))
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Birthday v2"
    assert [m["channel"] for m in body["messages"]] == ["email"]
    assert body["goal"] is None
    assert body["filters"] == {}
    assert list(MessageStep.objects.filter(campaign_id=created["id"]).values_list("position")) == [
        (1,)
    ]
    assert api.get(url).json() == body


def test_put_is_validated_in_full(api):
    created = create(api, drip())
    url = f"/api/v1/campaigns/{created['id']}"
    response = send(api, "put", url, {"name": "Only a name"})
    assert response.status_code == 400
    assert "messages" in response.json()["errors"]
    assert api.get(url).json() == created


def test_patch_of_the_name_keeps_the_rest(api):
    created = create(api, EXAMPLE)
    url = f"/api/v1/campaigns/{created['id']}"
    response = send(api, "patch", url, {"name": "Reactivation"})
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Reactivation"
    unchanged = {"name", "updated_at"}
    assert {k: v for k, v in body.items() if k not in unchanged} == {
        k: v for k, v in created.items() if k not in unchanged
    }
    event = AuditEvent.objects.filter(action="campaign.update").get()
    assert (event.before["name"], event.after["name"]) == ("Reactivation 6 months", "Reactivation")


def test_patch_validates_the_field_it_changes(api):
    created = create(api, drip())
    url = f"/api/v1/campaigns/{created['id']}"
    response = send(api, "patch", url, {"schedule": {"frequency": "daily", "time": "25:00"}})
    assert response.status_code == 400
    assert "time" in response.json()["errors"]["schedule"]
    response = send(api, "patch", url, {"messages": [{"body": "no channel"}]})
    assert response.status_code == 400
    assert "channel" in response.json()["errors"]["messages"][0]
    assert api.get(url).json() == created


def test_patch_adding_a_goal_to_a_one_step_campaign_is_400(api):
    created = create(api, drip())
    url = f"/api/v1/campaigns/{created['id']}"
    response = send(api, "patch", url, {"goal": {"type": "clicked_link"}})
    assert response.status_code == 400
    assert "goal" in response.json()["errors"]
    assert api.get(url).json()["goal"] is None
    # With a second step in the same patch it is fine.
    response = send(api, "patch", url, {"goal": {"type": "clicked_link"}, "messages": [SMS, EMAIL]})
    assert response.status_code == 200
    assert response.json()["goal"] == {"type": "clicked_link"}


def test_patch_is_checked_against_the_stored_trigger(api):
    created = create(api, drip())  # a birthday: no appointment
    url = f"/api/v1/campaigns/{created['id']}"
    response = send(api, "patch", url, {"messages": [{**SMS, "body": "{{AppointmentTime}}"}]})
    assert response.status_code == 400
    assert "body" in response.json()["errors"]["messages"][0]
    # …and the stored messages are checked against a patched trigger.
    appointment = create(
        api,
        drip(
            trigger={"type": "scheduled_appointment", "when": "days_before", "days": 1},
            messages=[{**SMS, "body": "See you {{AppointmentDate}}"}],
        ),
    )
    response = send(
        api,
        "patch",
        f"/api/v1/campaigns/{appointment['id']}",
        {"trigger": {"type": "birthday", "offset_days": 0}},
    )
    assert response.status_code == 400
    assert "body" in response.json()["errors"]["messages"][0]


def test_kind_cannot_change(api):
    created = create(api, drip())
    url = f"/api/v1/campaigns/{created['id']}"
    response = send(api, "patch", url, {"kind": "blast"})
    assert response.status_code == 400
    assert "kind" in response.json()["errors"]
    assert send(api, "put", url, blast()).status_code == 400
    assert api.get(url).json()["kind"] == "drip"


def test_a_sent_blast_no_longer_changes(api):
    created = create(api, blast())
    Campaign.objects.filter(pk=created["id"]).update(sent_at=dt.datetime(2026, 5, 1, tzinfo=dt.UTC))
    response = send(api, "patch", f"/api/v1/campaigns/{created['id']}", {"name": "Again"})
    assert response.status_code == 400
    assert "kind" in response.json()["errors"]
    assert Campaign.objects.get().name == "Closed Monday"


def test_delete_answers_204_then_404(api):
    created = create(api, drip())
    url = f"/api/v1/campaigns/{created['id']}"
    response = api.delete(url)
    assert response.status_code == 204
    assert api.get(url).status_code == 404
    assert api.delete(url).status_code == 404
    assert not MessageStep.objects.exists()
    event = AuditEvent.objects.get(action="campaign.delete")
    assert event.before["name"] == "Birthday"


def test_unknown_id_is_404(api):
    assert api.get("/api/v1/campaigns/999999").status_code == 404
    assert send(api, "patch", "/api/v1/campaigns/999999", {"name": "x"}).status_code == 404
    assert api.post("/api/v1/campaigns/999999/enable").status_code == 404
    assert api.get("/api/v1/campaigns/999999/audience").status_code == 404
    assert api.get("/api/v1/campaigns/abc").status_code == 404


# --- enable, disable, audit ------------------------------------------------------------------


def test_enable_and_disable_flip_the_bell_and_are_audited(api, practice):
    created = create(api, drip())
    assert created["enabled"] is False
    url = f"/api/v1/campaigns/{created['id']}"

    response = api.post(f"{url}/enable")
    assert response.status_code == 200
    assert response.json()["enabled"] is True
    assert Campaign.objects.get().enabled_at is not None
    assert api.post(f"{url}/enable").json()["enabled"] is True  # again: no change
    response = api.post(f"{url}/disable")
    assert response.status_code == 200
    assert response.json()["enabled"] is False
    assert api.get(url).json()["enabled"] is False

    events = list(
        AuditEvent.objects.filter(
            practice=practice, target_type="campaigns.campaign", target_id=str(created["id"])
        ).order_by("id")
    )
    assert [e.action for e in events] == ["campaign.create", "campaign.update", "campaign.update"]
    assert [(e.before["enabled"], e.after["enabled"]) for e in events[1:]] == [
        (False, True),
        (True, False),
    ]
    assert all(e.actor_label.startswith("api-key:") for e in events)


def test_session_changes_are_audited_with_the_user(member_client, practice):
    client = member_client(Role.USER_PLUS, practice=practice)
    created = create(client, drip())
    assert client.post(f"/api/v1/campaigns/{created['id']}/enable").status_code == 200
    actors = set(AuditEvent.objects.filter(action__startswith="campaign.").values_list("actor"))
    assert actors == {(client.membership.user.pk,)}


def test_enabling_a_sent_blast_is_400_naming_enabled(api):
    created = create(api, blast())
    Campaign.objects.filter(pk=created["id"]).update(sent_at=dt.datetime(2026, 5, 1, tzinfo=dt.UTC))
    response = api.post(f"/api/v1/campaigns/{created['id']}/enable")
    assert response.status_code == 400
    assert "enabled" in response.json()["errors"]
    assert Campaign.objects.get().enabled is False


# --- list ------------------------------------------------------------------------------------


def test_list_is_paginated_and_filtered_by_kind(api, practice):
    for n in range(52):
        make_campaign(practice, drip(name=f"Drip {n:02d}"))
    for n in range(3):
        make_campaign(practice, blast(name=f"Blast {n}"))
    page = api.get("/api/v1/campaigns").json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert page["count"] == 55
    assert len(page["results"]) == 50
    assert page["previous"] is None
    second = api.get(page["next"].replace("http://testserver", "")).json()
    assert len(second["results"]) == 5
    assert second["next"] is None
    ids = [c["id"] for c in page["results"] + second["results"]]
    assert len(set(ids)) == 55
    assert page["results"][0] == api.get(f"/api/v1/campaigns/{ids[0]}").json()

    blasts = api.get("/api/v1/campaigns?kind=blast").json()
    assert blasts["count"] == 3
    assert {c["kind"] for c in blasts["results"]} == {"blast"}
    assert api.get("/api/v1/campaigns?kind=drip").json()["count"] == 52
    response = api.get("/api/v1/campaigns?kind=sms")
    assert response.status_code == 400
    assert "kind" in response.json()["errors"]


def test_list_query_count_does_not_grow_with_campaigns(
    api, practice, django_assert_max_num_queries
):
    for n in range(20):
        make_campaign(
            practice,
            drip(name=f"Drip {n}", messages=[SMS, EMAIL], goal={"type": "clicked_link"}),
        )
    with django_assert_max_num_queries(5):
        response = api.get("/api/v1/campaigns")
    assert response.json()["count"] == 20


# --- audience --------------------------------------------------------------------------------

BIRTHDAY_PATIENTS = {
    "P1": {"first_name": "Ann", "last_name": "Able", "birth_date": "1980-05-14"},
    "P2": {
        "first_name": "Bob",
        "last_name": "Baker",
        "birth_date": "1990-05-14",
        "status": "inactive",
    },
    "P3": {"first_name": "Cy", "last_name": "Cole", "birth_date": "1985-05-15"},
    "P4": {"first_name": "Di", "last_name": "Dunn"},
}


def test_audience_of_a_birthday_campaign_at_an_instant(api):
    put_patients(api, BIRTHDAY_PATIENTS)
    created = create(api, drip())
    url = f"/api/v1/campaigns/{created['id']}/audience"

    body = api.get(url, {"at": AT}).json()
    assert dt.datetime.fromisoformat(body["at"]) == dt.datetime.fromisoformat(AT)
    assert body["count"] == 2
    assert body["results"] == [
        {
            "external_id": "P1",
            "first_name": "Ann",
            "last_name": "Able",
            "occurrence_key": "birthday:2026",
        },
        {
            "external_id": "P2",
            "first_name": "Bob",
            "last_name": "Baker",
            "occurrence_key": "birthday:2026",
        },
    ]
    # 23:00 in New York is still the 14th there, though the 15th in UTC.
    late = api.get(url, {"at": "2026-05-15T03:00:00+00:00"}).json()
    assert [p["external_id"] for p in late["results"]] == ["P1", "P2"]
    next_day = api.get(url, {"at": "2026-05-15T16:00:00+00:00"}).json()
    assert [p["external_id"] for p in next_day["results"]] == ["P3"]


def test_audience_respects_the_filters(api):
    put_patients(api, BIRTHDAY_PATIENTS)
    created = create(api, drip(filters={"status": "active"}))
    body = api.get(f"/api/v1/campaigns/{created['id']}/audience", {"at": AT}).json()
    assert body["count"] == 1
    assert [p["external_id"] for p in body["results"]] == ["P1"]


def test_audience_of_a_blast_is_every_patient_the_filters_keep(api):
    put_patients(api, BIRTHDAY_PATIENTS)
    created = create(api, blast(filters={"status": "active"}))
    body = api.get(f"/api/v1/campaigns/{created['id']}/audience", {"at": AT}).json()
    assert [p["external_id"] for p in body["results"]] == ["P1", "P3", "P4"]
    assert {p["occurrence_key"] for p in body["results"]} == {"blast"}


def test_audience_answers_the_count_and_the_first_page(api, django_assert_max_num_queries):
    patients = [
        {"external_id": f"B{n:02d}", "last_name": f"Name{n:02d}", "birth_date": "1970-05-14"}
        for n in range(55)
    ]
    assert send(api, "post", "/api/v1/patients:bulk", {"patients": patients}).status_code == 200
    created = create(api, drip())
    with django_assert_max_num_queries(5):
        body = api.get(f"/api/v1/campaigns/{created['id']}/audience", {"at": AT}).json()
    assert body["count"] == 55
    assert len(body["results"]) == 50
    assert body["results"][0]["external_id"] == "B00"


def test_audience_at_defaults_to_now(api):
    created = create(api, drip())
    before = dt.datetime.now(dt.UTC)
    body = api.get(f"/api/v1/campaigns/{created['id']}/audience").json()
    assert before <= dt.datetime.fromisoformat(body["at"]) <= dt.datetime.now(dt.UTC)
    assert body["count"] == 0
    assert body["results"] == []


def test_audience_accepts_an_unencoded_plus_offset(api):
    put_patients(api, BIRTHDAY_PATIENTS)
    created = create(api, drip())
    # "+" in a query string decodes to a space.
    response = api.get(f"/api/v1/campaigns/{created['id']}/audience?at=2026-05-14T12:00:00+00:00")
    assert response.status_code == 200
    assert response.json()["count"] == 2


@pytest.mark.parametrize("at", ["yesterday", "2026-05-14T12:00:00", "2026-13-01T00:00:00Z"])
def test_audience_with_a_bad_or_naive_at_is_400_naming_it(api, at):
    created = create(api, drip())
    response = api.get(f"/api/v1/campaigns/{created['id']}/audience", {"at": at})
    assert response.status_code == 400
    assert "at" in response.json()["errors"]


# --- explain ---------------------------------------------------------------------------------


def test_explain_a_patient_who_matches_and_two_who_do_not(api):
    put_patients(api, BIRTHDAY_PATIENTS)
    created = create(api, drip(filters={"status": "active"}))
    url = f"/api/v1/campaigns/{created['id']}/explain"

    match = api.get(url, {"patient": "P1", "at": AT}).json()
    assert match["patient_external_id"] == "P1"
    assert match["campaign"] == created["id"]
    assert match["would_enter"] is True
    assert match["occurrence_key"] == "birthday:2026"
    assert [(c["check"], c["passed"]) for c in match["checks"]] == [
        ("trigger: birthday", True),
        ("filter: Status", True),
        ("exclusion: the patient is not deceased", True),
        ("exclusion: this occurrence has not entered yet", True),
    ]
    assert match["local_date"] == "2026-05-14"

    inactive = api.get(url, {"patient": "P2", "at": AT}).json()
    assert inactive["would_enter"] is False
    assert inactive["occurrence_key"] is None
    assert [(c["check"], c["passed"]) for c in inactive["checks"]] == [
        ("trigger: birthday", True),
        ("filter: Status", False),
        ("exclusion: the patient is not deceased", True),
        ("exclusion: this occurrence has not entered yet", True),
    ]

    other_day = api.get(url, {"patient": "P3", "at": AT}).json()
    assert other_day["would_enter"] is False
    assert [(c["check"], c["passed"]) for c in other_day["checks"]] == [
        ("trigger: birthday", False),
        ("filter: Status", True),
        ("exclusion: the patient is not deceased", True),
        ("exclusion: this occurrence has not entered yet", True),
    ]
    assert "May 15" in other_day["checks"][0]["detail"]


def test_explain_needs_a_known_patient_and_a_good_at(api, other_practice):
    put_patients(api, BIRTHDAY_PATIENTS)
    put_patients(key_client(other_practice), {"Z9": {"first_name": "Zed"}})
    created = create(api, drip())
    url = f"/api/v1/campaigns/{created['id']}/explain"
    response = api.get(url, {"at": AT})
    assert response.status_code == 400
    assert "patient" in response.json()["errors"]
    assert api.get(url, {"patient": "NOPE", "at": AT}).status_code == 404
    assert api.get(url, {"patient": "Z9", "at": AT}).status_code == 404  # another practice's
    response = api.get(url, {"patient": "P1", "at": "noon"})
    assert response.status_code == 400
    assert "at" in response.json()["errors"]
    assert api.get(url, {"patient": "P1"}).status_code == 200


# --- who may call them -----------------------------------------------------------------------


def every_call(campaign_id: int) -> list[tuple[str, str, dict | None, int]]:
    """Every campaign endpoint: method, url, body, and the status of a permitted call."""
    url = f"/api/v1/campaigns/{campaign_id}"
    return [
        ("get", "/api/v1/campaigns", None, 200),
        ("post", "/api/v1/campaigns", drip(name="New"), 201),
        ("get", url, None, 200),
        ("put", url, drip(name="Replaced"), 200),
        ("patch", url, {"name": "Patched"}, 200),
        ("post", f"{url}/enable", None, 200),
        ("post", f"{url}/disable", None, 200),
        ("get", f"{url}/audience?at=2026-05-14T16:00:00Z", None, 200),
        ("get", f"{url}/explain?patient=P1&at=2026-05-14T16:00:00Z", None, 200),
        ("delete", url, None, 204),
    ]


def test_a_user_gets_403_on_every_campaign_endpoint(member_client, practice):
    campaign = make_campaign(practice, drip())
    put_patients(key_client(practice), {"P1": BIRTHDAY_PATIENTS["P1"]})
    user = member_client(Role.USER, practice=practice)
    for method, url, body, _ in every_call(campaign.pk):
        assert send(user, method, url, body).status_code == 403, (method, url)
    assert list(Campaign.objects.values_list("name", "enabled")) == [("Birthday", False)]


@pytest.mark.parametrize("role", [Role.USER_PLUS, Role.MANAGER, Role.ADMINISTRATOR])
def test_user_plus_and_above_may_use_every_campaign_endpoint(member_client, practice, role):
    campaign = make_campaign(practice, drip())
    put_patients(key_client(practice), {"P1": BIRTHDAY_PATIENTS["P1"]})
    client = member_client(role, practice=practice)
    for method, url, body, status in every_call(campaign.pk):
        assert send(client, method, url, body).status_code == status, (method, url)
    assert list(Campaign.objects.values_list("name", flat=True)) == ["New"]


def test_another_practice_gets_404_and_an_empty_list(api, practice, other_practice, member_client):
    campaign = make_campaign(practice, drip())
    put_patients(api, {"P1": BIRTHDAY_PATIENTS["P1"]})
    outsiders = [
        key_client(other_practice),
        member_client(Role.ADMINISTRATOR, practice=other_practice),
    ]
    for outsider in outsiders:
        for method, url, body, _ in every_call(campaign.pk)[2:]:
            assert send(outsider, method, url, body).status_code == 404, (method, url)
        assert outsider.get("/api/v1/campaigns").json()["count"] == 0
    assert list(Campaign.objects.values_list("name", "enabled")) == [("Birthday", False)]


def test_no_key_is_401(practice):
    campaign = make_campaign(practice, drip())
    anonymous = Client()
    for method, url, body, _ in every_call(campaign.pk):
        assert send(anonymous, method, url, body).status_code == 401, (method, url)
    wrong = Client(headers={"Authorization": "Api-Key ts_00000000_wrong"})
    assert wrong.get("/api/v1/campaigns").status_code == 401
    assert Campaign.objects.get().name == "Birthday"


def test_wrong_method_is_405(api, practice):
    campaign = make_campaign(practice, drip())
    url = f"/api/v1/campaigns/{campaign.pk}"
    assert api.put("/api/v1/campaigns", drip(), content_type="application/json").status_code == 405
    assert api.delete("/api/v1/campaigns").status_code == 405
    assert api.post(url, drip(), content_type="application/json").status_code == 405
    assert api.get(f"{url}/enable").status_code == 405
    assert api.delete(f"{url}/disable").status_code == 405
    assert api.post(f"{url}/audience").status_code == 405
    assert api.post(f"{url}/explain?patient=P1").status_code == 405
    assert Campaign.objects.filter(pk=campaign.pk).exists()


def test_schema_documents_the_campaign_endpoints():
    schema = Client().get("/api/schema/").content.decode()
    for path in [
        "/api/v1/campaigns:",
        "/api/v1/campaigns/{campaign_id}:",
        "/api/v1/campaigns/{campaign_id}/enable",
        "/api/v1/campaigns/{campaign_id}/disable",
        "/api/v1/campaigns/{campaign_id}/audience",
        "/api/v1/campaigns/{campaign_id}/explain",
    ]:
        assert path in schema, path
