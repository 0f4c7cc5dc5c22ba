"""The "+ Add Campaign" wizard end to end in the test client: each step saves its part into the
session draft, going back keeps it, invalid input is a 400 that leaves the draft alone, and
step 5 writes the campaign (new, or an existing one edited through the same steps)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from campaigns.language.spec import CampaignSerializer
from campaigns.models import Campaign, MessageTemplate
from campaigns.services import (
    campaign_as_json,
    campaign_create,
    template_folder_create,
    template_save,
)
from campaigns.views.wizard_state import draft_key
from messaging.models import OutboundMessage, SandboxMessage
from patients.models import Lookup, LookupKind, Tag
from patients.sync.patients import patients_upsert
from tests.factories import AppointmentFactory, PatientFactory
from trackstat.models import AuditEvent, Role

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
# Tuesday 10 March 2026, 11:00 in New York (the factories' practice time zone).
NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 3, 10)


@pytest.fixture(autouse=True)
def frozen_time():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def plus(member_client):
    return member_client(Role.USER_PLUS)


def _practice(client):
    return client.membership.practice


def _patients(practice, *records):
    result = patients_upsert(
        practice=practice,
        records=[{"_index": i, **record} for i, record in enumerate(records)],
    )
    assert result.errors == []


def _lookups(practice, kind, *names):
    for name in names:
        Lookup.objects.get_or_create(practice=practice, kind=kind, name=name)


def _tags(practice, *names):
    for name in names:
        Tag.objects.get_or_create(practice=practice, name=name)


def _url(step, campaign=None):
    if campaign:
        return reverse("campaigns:drip_edit_step", args=[campaign.pk, step])
    return reverse("campaigns:drip_new_step", args=[step])


def _post(client, step, data, action="next", campaign=None, **extra):
    return client.post(_url(step, campaign), {**data, "action": action}, **extra)


def _draft(client, campaign=None):
    key = draft_key(_practice(client).pk, campaign.pk if campaign else None)
    return client.session.get(key)


def _audience(trigger: dict, filters: dict | None = None, schedule: dict | None = None) -> dict:
    """Audience-step POST data from short names (``type``, ``status``, ``time``, …)."""
    data = {f"trigger-{k}": v for k, v in trigger.items()}
    data.update({f"filter-{k}": v for k, v in (filters or {}).items()})
    schedule = schedule or {"frequency": "daily", "time": "10:00"}
    data.update({f"schedule-{k}": v for k, v in schedule.items()})
    return data


def _steps(*messages: dict) -> dict:
    data = {}
    for index, message in enumerate(messages):
        for key, value in message.items():
            data[f"step-{index}-{key}"] = value
    return data


def _make_campaign(practice, **data):
    serializer = CampaignSerializer(data=data)
    assert serializer.is_valid(), serializer.errors
    return campaign_create(practice=practice, data=serializer.validated_data, actor=None)


# --- the whole wizard --------------------------------------------------------------------------


def test_birthday_campaign_with_filters_two_steps_and_a_goal(plus):
    practice = _practice(plus)
    _tags(practice, "moved", "vip")
    _lookups(practice, LookupKind.PURPOSE, "Adjustment", "New Patient Exam")
    _lookups(practice, LookupKind.PROVIDER, "Dr. Chen")

    response = plus.get(reverse("campaigns:drip_new"))
    assert response.status_code == 302
    assert response["Location"] == _url("name")
    assert plus.get(_url("name")).status_code == 200

    # 1 Name
    response = _post(plus, "name", {"name": "Happy birthday"})
    assert response.status_code == 302
    assert response["Location"] == _url("audience")
    assert _draft(plus)["name"] == "Happy birthday"

    # 2 Audience
    response = _post(
        plus,
        "audience",
        _audience(
            {"type": "birthday", "timing": "before", "offset": "2"},
            {
                "tags_exclude": ["moved"],
                "status": "active",
                "has_future_appointment": "no",
                "providers": ["Dr. Chen"],
                "providers_match": "primary",
                "age_min": "18",
                "sex": ["F", "M"],
                "states": "IL, WI",
                "visit_count_min": "2",
            },
            {
                "frequency": "weekly",
                "weekdays": ["mon", "thu"],
                "time": "09:30",
                "exclude_recent_days": "7",
            },
        ),
    )
    assert response.status_code == 302, response.text
    assert response["Location"] == _url("messages")
    draft = _draft(plus)
    assert draft["trigger"] == {"type": "birthday", "offset_days": -2}
    filters = {
        "tags": {"include": [], "exclude": ["moved"]},
        "status": "active",
        "has_future_appointment": False,
        "providers": {"names": ["Dr. Chen"], "match": "primary"},
        "age": {"min": 18},
        "sex": ["F", "M"],
        "address": {"states": ["IL", "WI"]},
        "visit_count": {"min": 2},
    }
    assert draft["filters"] == filters
    assert draft["schedule"] == {"frequency": "weekly", "time": "09:30", "weekdays": ["mon", "thu"]}
    assert draft["exclude_recent_days"] == 7

    # 3 Messages: add two, fill them in, next
    response = _post(plus, "messages", {}, action="add_sms", follow=True)
    assert response.status_code == 200
    assert 'name="step-0-body"' in response.text
    response = _post(
        plus, "messages", _steps({"channel": "sms", "body": "x"}), action="add_email", follow=True
    )
    assert response.status_code == 200
    assert 'name="step-1-subject"' in response.text
    assert _draft(plus)["messages"] == []  # the campaign's messages: not until Next
    # … but what was typed is kept in the draft: a reload shows both messages.
    assert [row["channel"] for row in _draft(plus)["message_rows"]] == ["sms", "email"]
    reloaded = plus.get(_url("messages")).text
    assert ">x</textarea>" in reloaded
    assert 'name="step-1-subject"' in reloaded
    sms = "Happy birthday {{PatientFirstName}}! From {{PracticeName}}"
    email = "<p>Treat yourself: {{OnlineSchedulingLink}}</p>"
    response = _post(
        plus,
        "messages",
        _steps(
            {"channel": "sms", "body": sms, "delay_value": "0", "delay_unit": "days"},
            {
                "channel": "email",
                "subject": "A gift for you, {{PatientFirstName}}",
                "body": email,
                "delay_value": "3",
                "delay_unit": "days",
            },
        ),
    )
    assert response.status_code == 302, response.text
    messages = [
        {"channel": "sms", "subject": "", "body": sms, "delay": {"value": 0, "unit": "days"}},
        {
            "channel": "email",
            "subject": "A gift for you, {{PatientFirstName}}",
            "body": email,
            "delay": {"value": 3, "unit": "days"},
        },
    ]
    assert _draft(plus)["messages"] == messages

    # 4 Goals
    response = _post(
        plus,
        "goals",
        {"type": "future_appointment", "appointment_purposes": ["Adjustment"], "url": ""},
    )
    assert response.status_code == 302, response.text
    goal = {"type": "future_appointment", "filters": {"appointment_purposes": ["Adjustment"]}}
    assert _draft(plus)["goal"] == goal

    # 5 Review and activate
    review = plus.get(_url("review"))
    assert review.status_code == 200
    assert "2 days before the patient&#x27;s birthday" in review.text
    assert "Weekly on Mon, Thu at 09:30" in review.text
    assert "Has none of the tags: moved" in review.text
    asked = _post(plus, "review", {}, action="activate")  # without JavaScript: asked first
    assert asked.status_code == 200
    assert "Turn on “Happy birthday” now?" in asked.text
    assert not Campaign.objects.filter(practice=practice).exists()
    response = _post(plus, "review", {"confirmed": "yes"}, action="activate")
    assert response.status_code == 302
    assert response["Location"] == reverse("campaigns:drip_list")

    campaign = Campaign.objects.get(practice=practice)
    data = campaign_as_json(campaign)
    assert data["name"] == "Happy birthday"
    assert data["kind"] == "drip"
    assert data["enabled"] is True
    assert data["trigger"] == {"type": "birthday", "offset_days": -2}
    assert data["filters"] == filters
    assert data["schedule"] == {"frequency": "weekly", "time": "09:30", "weekdays": ["mon", "thu"]}
    assert data["exclude_recent_days"] == 7
    assert data["messages"] == messages
    assert data["goal"] == goal
    assert campaign.created_by == plus.membership.user
    assert AuditEvent.objects.filter(action="campaign.create", practice=practice).count() == 1
    assert _draft(plus) is None  # the draft is gone once saved


def test_reactivation_campaign_one_step_no_goal_saved_off(plus):
    practice = _practice(plus)
    _tags(practice, "moved", "not qualified")
    _lookups(practice, LookupKind.CASE_TYPE, "Personal Injury", "Wellness")

    assert _post(plus, "name", {"name": "Reactivation 6 months"}).status_code == 302
    response = _post(
        plus,
        "audience",
        _audience(
            {
                "type": "last_visit_checked_in",
                "when": "days_ago",
                "days": "180",
                "match": "at_least",
            },
            {
                "tags_exclude": ["not qualified", "moved"],
                "status": "active",
                "has_future_appointment": "no",
                "case_types": ["Personal Injury"],
            },
            {"frequency": "daily", "time": "10:00", "exclude_recent_days": "30"},
        ),
    )
    assert response.status_code == 302, response.text
    body = "Hi {{PatientFirstName}}, we miss you! Book: {{OnlineSchedulingLink}}"
    assert _post(plus, "messages", _steps({"channel": "sms", "body": body})).status_code == 302
    goals = plus.get(_url("goals"))
    assert "more than one message" in goals.text
    assert _post(plus, "goals", {}).status_code == 302
    assert _post(plus, "review", {}, action="save").status_code == 302

    data = campaign_as_json(Campaign.objects.get(practice=practice))
    assert {k: data[k] for k in ("name", "enabled", "trigger", "filters", "schedule")} == {
        "name": "Reactivation 6 months",
        "enabled": False,
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
    }
    assert data["exclude_recent_days"] == 30
    assert data["messages"] == [
        {"channel": "sms", "subject": "", "body": body, "delay": {"value": 0, "unit": "days"}}
    ]
    assert data["goal"] is None


def test_going_back_keeps_what_was_entered(plus):
    practice = _practice(plus)
    _tags(practice, "vip")
    _post(plus, "name", {"name": "Missed you"})
    _post(
        plus,
        "audience",
        _audience(
            {"type": "missed_appointment", "minutes_after": "25"},
            {"tags_include": ["vip"], "status": "inactive"},
        ),
    )
    response = _post(
        plus, "messages", _steps({"channel": "sms", "body": "Sorry we missed you"}), "back"
    )
    assert response.status_code == 302
    assert response["Location"] == _url("audience")
    assert _draft(plus)["messages"][0]["body"] == "Sorry we missed you"

    audience = plus.get(_url("audience")).text
    assert '<option value="missed_appointment" selected>' in audience
    assert '<option value="25" selected>' in audience
    vip = 'name="filter-tags_include" value="vip" id="id_filter-tags_include_0" checked'
    assert vip in audience
    assert '<option value="inactive" selected>' in audience
    assert "Sorry we missed you" in plus.get(_url("messages")).text
    assert 'value="Missed you"' in plus.get(_url("name")).text


def test_back_from_the_audience_step_saves_it_too(plus):
    _post(plus, "name", {"name": "B"})
    response = _post(
        plus, "audience", _audience({"type": "first_visit", "days_after": "3"}), "back"
    )
    assert response.status_code == 302
    assert response["Location"] == _url("name")
    assert _draft(plus)["trigger"] == {"type": "first_visit", "days_after": 3}


# --- invalid input ------------------------------------------------------------------------------


def test_invalid_name_is_a_400_and_leaves_the_draft(plus):
    _post(plus, "name", {"name": "Kept"})
    response = _post(plus, "name", {"name": "  "})
    assert response.status_code == 400
    assert "Give the campaign a name." in response.text
    assert _draft(plus)["name"] == "Kept"


@pytest.mark.parametrize(
    ("trigger", "schedule", "message"),
    [
        (
            {"type": "last_visit_checked_in", "when": "days_ago", "days": "", "match": "at_least"},
            None,
            "Days since: This field is required.",
        ),
        (
            {"type": "scheduled_appointment", "when": "days_before", "days": "400"},
            None,
            "Must be between 0 and 365.",
        ),
        (
            {"type": "birthday", "timing": "before", "offset": "61"},
            None,
            "Ensure this value is less than or equal to 60.",
        ),
        (
            {"type": "anniversary", "timing": "on", "years": "one, two"},
            None,
            "Whole years separated by commas",
        ),
        (
            {"type": "birthday", "timing": "on"},
            {"frequency": "weekly", "time": "10:00"},
            "Choose at least one day of the week",
        ),
        (
            {"type": "birthday", "timing": "on"},
            {"frequency": "daily", "time": "25:00"},
            "Use local time as HH:MM, e.g. 10:00.",
        ),
    ],
)
def test_invalid_audience_is_a_400_with_the_fields_message(plus, trigger, schedule, message):
    _post(plus, "name", {"name": "N"})
    before = _draft(plus)
    response = _post(plus, "audience", _audience(trigger, {"status": "active"}, schedule))
    assert response.status_code == 400
    assert message in response.text
    assert _draft(plus) == before


def test_invalid_filters_are_a_400_with_the_fields_message(plus):
    _post(plus, "name", {"name": "N"})
    before = _draft(plus)
    response = _post(
        plus,
        "audience",
        _audience({"type": "birthday"}, {"age_min": "40", "age_max": "20", "visit_count_eq": "x"}),
    )
    assert response.status_code == 400
    assert "Visit count exactly: Enter a whole number." in response.text
    response = _post(
        plus, "audience", _audience({"type": "birthday"}, {"age_min": "40", "age_max": "20"})
    )
    assert response.status_code == 400
    assert "Age at least: The lowest (40) is above the highest (20)." in response.text
    response = _post(plus, "audience", _audience({"type": "birthday"}, {"tags_include": ["nope"]}))
    assert response.status_code == 400
    assert "Select a valid choice" in response.text
    assert _draft(plus) == before


def test_invalid_messages_are_a_400_and_leave_the_draft(plus):
    _post(plus, "name", {"name": "N"})
    _post(plus, "audience", _audience({"type": "birthday"}))
    _post(plus, "messages", _steps({"channel": "sms", "body": "Kept"}))
    before = _draft(plus)

    response = _post(plus, "messages", _steps({"channel": "sms", "body": "Hi {{Foo}}"}))
    assert response.status_code == 400
    assert "Message: Unknown merge field {{Foo}}." in response.text
    response = _post(
        plus, "messages", _steps({"channel": "email", "subject": "", "body": "<p>x</p>"})
    )
    assert response.status_code == 400
    assert "Subject: An email needs a subject." in response.text
    response = _post(
        plus,
        "messages",
        _steps(
            {"channel": "sms", "body": "ok"}, {"channel": "sms", "body": "b", "delay_value": "x"}
        ),
    )
    assert response.status_code == 400
    assert "Delay: The delay must be a whole number." in response.text
    # A birthday has no appointment to take a date from.
    response = _post(
        plus, "messages", _steps({"channel": "sms", "body": "See you {{AppointmentDate}}"})
    )
    assert response.status_code == 400
    assert "{{AppointmentDate}} needs a trigger with an appointment." in response.text
    response = _post(plus, "messages", {})
    assert response.status_code == 400
    assert "Add at least one message." in response.text
    # The campaign's messages are left as they were; the rows as typed are kept to fix.
    assert _draft(plus)["messages"] == before["messages"]
    assert {k: v for k, v in _draft(plus).items() if k != "message_rows"} == before


def test_invalid_goal_is_a_400(plus):
    _post(plus, "name", {"name": "N"})
    _post(plus, "audience", _audience({"type": "birthday"}))
    _post(
        plus, "messages", _steps({"channel": "sms", "body": "a"}, {"channel": "sms", "body": "b"})
    )
    before = _draft(plus)
    response = _post(plus, "goals", {"type": "clicked_link", "url": "not a url"})
    assert response.status_code == 400
    assert "Enter a valid URL." in response.text
    assert _draft(plus) == before


def test_review_shows_errors_next_to_their_step_with_400(plus):
    # A goal saved while there were two messages; then one message is removed.
    _post(plus, "name", {"name": "N"})
    _post(plus, "audience", _audience({"type": "birthday"}))
    _post(
        plus, "messages", _steps({"channel": "sms", "body": "a"}, {"channel": "sms", "body": "b"})
    )
    _post(plus, "goals", {"type": "clicked_link", "url": ""})
    _post(plus, "messages", _steps({"channel": "sms", "body": "a"}))
    response = _post(plus, "review", {}, action="save")
    assert response.status_code == 400
    assert "Goal: A goal needs a campaign with more than one message." in response.text
    assert not Campaign.objects.exists()


def test_an_incomplete_draft_cannot_be_saved(plus):
    response = _post(plus, "review", {}, action="save")
    assert response.status_code == 400
    assert "Name: This field may not be blank." in response.text
    _post(plus, "name", {"name": "N"})
    response = _post(plus, "review", {}, action="save")
    assert response.status_code == 400
    assert "Messages: Add at least one message." in response.text
    assert not Campaign.objects.exists()


# --- editing an existing campaign ---------------------------------------------------------------


def test_editing_an_existing_campaign_through_the_same_steps(plus):
    practice = _practice(plus)
    campaign = _make_campaign(
        practice,
        name="Reminder",
        enabled=True,
        trigger={"type": "scheduled_appointment", "when": "days_before", "days": 1},
        filters={"status": "active"},
        schedule={"frequency": "daily", "time": "18:00"},
        messages=[{"channel": "sms", "body": "See you {{AppointmentDate}} at {{AppointmentTime}}"}],
    )
    response = plus.get(reverse("campaigns:drip_edit", args=[campaign.pk]))
    assert response["Location"] == _url("name", campaign)
    assert 'value="Reminder"' in plus.get(_url("name", campaign)).text
    audience = plus.get(_url("audience", campaign)).text
    assert '<option value="scheduled_appointment" selected>' in audience
    assert '<option value="days_before" selected>' in audience
    assert 'name="trigger-days" value="1"' in audience
    assert 'value="18:00"' in audience

    assert _post(plus, "name", {"name": "Reminder (2 days)"}, campaign=campaign).status_code == 302
    response = _post(
        plus,
        "audience",
        _audience(
            {"type": "scheduled_appointment", "when": "days_before", "days": "2"},
            {"status": "active"},
            {"frequency": "daily", "time": "18:00"},
        ),
        campaign=campaign,
    )
    assert response.status_code == 302
    # The campaign itself is unchanged until step 5; a new campaign's draft is separate.
    campaign.refresh_from_db()
    assert campaign.name == "Reminder"
    assert _draft(plus) is None
    messages = plus.get(_url("messages", campaign)).text
    assert "See you {{AppointmentDate}} at {{AppointmentTime}}" in messages

    response = _post(plus, "review", {}, action="save", campaign=campaign)
    assert response.status_code == 302
    data = campaign_as_json(Campaign.objects.get(pk=campaign.pk))
    assert data["name"] == "Reminder (2 days)"
    assert data["trigger"] == {"type": "scheduled_appointment", "when": "days_before", "days": 2}
    assert data["enabled"] is True  # "Save" keeps it on
    assert data["messages"][0]["body"] == "See you {{AppointmentDate}} at {{AppointmentTime}}"
    assert AuditEvent.objects.filter(action="campaign.update").count() == 1
    assert _draft(plus, campaign) is None


def test_review_warns_when_the_campaign_changed_since_the_edit_began(plus):
    campaign = _make_campaign(
        _practice(plus),
        name="Birthday",
        trigger={"type": "birthday", "offset_days": 0},
        schedule={"frequency": "daily", "time": "10:00"},
        messages=[{"channel": "sms", "body": "Hi"}],
    )
    _post(plus, "name", {"name": "Birthday 2"}, campaign=campaign)
    assert "changed elsewhere" not in plus.get(_url("review", campaign)).text
    with time_machine.travel(NOW + dt.timedelta(minutes=5), tick=False):
        Campaign.objects.get(pk=campaign.pk).save()  # e.g. a change through the API
    assert "changed elsewhere" in plus.get(_url("review", campaign)).text


def test_paid_total_filter_is_for_managers_and_kept_when_user_plus_edits(plus, member_client):
    practice = _practice(plus)
    campaign = _make_campaign(
        practice,
        name="Big spenders",
        trigger={"type": "birthday", "offset_days": 0},
        filters={"paid_total": {"min": 500}},
        schedule={"frequency": "daily", "time": "10:00"},
        messages=[{"channel": "sms", "body": "Hi"}],
    )
    manager = member_client(Role.MANAGER, practice=practice)
    assert 'name="filter-paid_total_min"' in manager.get(_url("audience", campaign)).text

    page = plus.get(_url("audience", campaign)).text
    assert 'name="filter-paid_total_min"' not in page
    assert "Set by a Manager; kept as it is." in page
    response = _post(
        plus, "audience", _audience({"type": "birthday"}, {"status": "active"}), campaign=campaign
    )
    assert response.status_code == 302
    assert _draft(plus, campaign)["filters"] == {"status": "active", "paid_total": {"min": 500}}

    response = _post(
        manager,
        "audience",
        _audience({"type": "birthday"}, {"paid_total_min": "250.50"}),
        campaign=campaign,
    )
    assert response.status_code == 302
    assert _draft(manager, campaign)["filters"] == {"paid_total": {"min": 250.5}}


def test_a_confirmation_filter_set_through_the_api_is_kept_when_the_wizard_edits(plus):
    """The wizard has no input for ``appointment_confirmations`` (DESIGN §7): saving the
    audience step keeps it instead of dropping it."""
    practice = _practice(plus)
    campaign = _make_campaign(
        practice,
        name="Remind again",
        trigger={"type": "scheduled_appointment", "when": "days_before", "days": 1},
        filters={"appointment_confirmations": ["none", "requested"]},
        schedule={"frequency": "daily", "time": "10:00"},
        messages=[{"channel": "sms", "body": "See you tomorrow"}],
    )
    trigger = {"type": "scheduled_appointment", "when": "days_before", "days": "1"}
    response = _post(plus, "audience", _audience(trigger, {"status": "active"}), campaign=campaign)
    assert response.status_code == 302
    assert _draft(plus, campaign)["filters"] == {
        "status": "active",
        "appointment_confirmations": ["none", "requested"],
    }


# --- the htmx partials ------------------------------------------------------------------------


def test_trigger_options_partial_shows_only_the_chosen_types_options(plus):
    url = reverse("campaigns:drip_new_trigger_options")
    response = plus.get(url, {"trigger-type": "missed_appointment"}, headers=HTMX)
    assert response.status_code == 200
    assert "<html" not in response.text
    assert 'name="trigger-minutes_after"' in response.text
    assert '<option value="30" selected>' in response.text  # a typical value to start from
    assert 'name="trigger-offset"' not in response.text
    response = plus.get(
        url, {"trigger-type": "last_visit_checked_in", "trigger-when": "today"}, headers=HTMX
    )
    assert '<option value="today" selected>' in response.text
    assert 'name="trigger-hours_after"' in response.text
    assert 'name="trigger-days"' not in response.text
    # Switching to a type shows its typical options, selected.
    response = plus.get(url, {"trigger-type": "last_visit_checked_in"}, headers=HTMX)
    assert '<option value="days_ago" selected>' in response.text
    assert 'name="trigger-days" value="180"' in response.text
    assert '<option value="at_least" selected>' in response.text
    # The live count follows the new options once they are on the page.
    assert "trigger-options-changed" in response["HX-Trigger-After-Settle"]


def test_without_javascript_a_refresh_shows_the_new_types_options_and_saves_nothing(plus):
    _post(plus, "name", {"name": "N"})
    before = _draft(plus)
    response = _post(
        plus,
        "audience",
        _audience({"type": "scheduled_appointment", "timing": "on"}),
        action="refresh",
    )
    assert response.status_code == 200
    assert '<option value="scheduled_appointment" selected>' in response.text
    assert '<option value="days_before" selected>' in response.text
    assert 'name="trigger-timing"' not in response.text
    assert _draft(plus) == before


def test_live_count_partial_counts_the_audience_now(plus):
    practice = _practice(plus)
    _tags(practice, "moved")
    born_today = dt.date(1980, TODAY.month, TODAY.day)
    _patients(
        practice,
        {"external_id": "1", "first_name": "Ann", "birth_date": born_today},
        {"external_id": "2", "first_name": "Bob", "birth_date": born_today, "status": "inactive"},
        {"external_id": "3", "first_name": "Cat", "birth_date": born_today, "tags": ["moved"]},
        {"external_id": "4", "first_name": "Dan", "birth_date": dt.date(1990, 3, 12)},
        {"external_id": "5", "first_name": "Eve", "birth_date": dt.date(1991, 3, 12)},
    )
    url = reverse("campaigns:drip_new_audience_count")

    def count(trigger, filters):
        response = plus.get(url, _audience(trigger, filters), headers=HTMX)
        assert response.status_code == 200
        assert "<html" not in response.text
        return response.text

    text = count(
        {"type": "birthday", "timing": "on"}, {"status": "active", "tags_exclude": ["moved"]}
    )
    assert "<strong>1</strong> patient" in text
    assert "Has none of the tags: moved" in text
    assert "Status: Active" in text
    assert "<strong>3</strong> patients" in count({"type": "birthday", "timing": "on"}, {})
    # Two days ahead of the birthday: born on 12 March.
    assert "<strong>2</strong> patients" in count(
        {"type": "birthday", "timing": "before", "offset": "2"}, {}
    )
    assert "<strong>0</strong> patients" in count(
        {"type": "birthday", "timing": "after", "offset": "2"}, {}
    )
    assert "Complete the trigger" in count(
        {"type": "last_visit_checked_in", "when": "days_ago", "days": ""}, {}
    )


def test_audience_step_shows_the_count_and_the_selected_filters(plus):
    practice = _practice(plus)
    _patients(practice, {"external_id": "1", "birth_date": dt.date(1970, 3, 10)})
    page = plus.get(_url("audience")).text
    assert "<strong>1</strong> patient" in page
    assert "Show All Selected Filters" in page
    assert "Status: Active" in page  # new campaigns start with active patients


def test_sms_counter_partial(plus):
    url = reverse("campaigns:sms_count") + "?field=step-0-body"
    response = plus.post(url, {"step-0-body": "a" * 161}, headers=HTMX)
    assert response.status_code == 200
    assert "161 characters · 2 segments (GSM-7)" in response.text
    response = plus.post(url, {"step-0-body": "It\u2019s ok"}, headers=HTMX)
    assert "7 characters · 1 segment (UCS-2)" in response.text
    assert "\u2019 needs Unicode" in response.text
    bad = plus.post(reverse("campaigns:sms_count") + "?field=password", {"password": "x"})
    assert bad.status_code == 400


def test_messages_step_shows_length_and_segments(plus):
    _post(plus, "name", {"name": "N"})
    _post(plus, "audience", _audience({"type": "birthday"}))
    _post(plus, "messages", _steps({"channel": "sms", "body": "€" * 80}))
    assert "160 characters · 1 segment (GSM-7)" in plus.get(_url("messages")).text


def test_messages_step_says_when_day_delayed_messages_go_out(plus):
    """A continuous trigger has no run time: its day-delayed messages go out at the
    schedule's time, 10:00 unless set (DESIGN §5.4); the wizard says which."""
    _post(plus, "name", {"name": "Missed"})
    missed = {"type": "missed_appointment", "minutes_after": "25"}
    _post(plus, "audience", _audience(missed))
    page = plus.get(_url("messages")).text
    assert "Messages delayed by days or more go out at 10:00 on their day" in page
    assert "this trigger is checked every minute" in page
    _post(plus, "audience", _audience(missed, schedule={"frequency": "daily", "time": "09:15"}))
    assert (
        "go out at 09:15 on their day: this trigger is checked every minute"
        in plus.get(_url("messages")).text
    )
    birthday = {"type": "birthday"}
    _post(plus, "audience", _audience(birthday, schedule={"frequency": "daily", "time": "08:30"}))
    page = plus.get(_url("messages")).text
    assert "go out at 08:30 on their day, when the campaign runs" in page
    assert "checked every minute" not in page


def test_add_a_step_from_a_template_and_insert_a_merge_field(plus, other_practice):
    master = MessageTemplate.objects.get(practice=None, name="Reactivation")
    response = _post(plus, "messages", {"template": master.pk}, action="add_template", follow=True)
    assert response.status_code == 200
    assert master.body in response.text
    assert 'name="step-0-channel"' in response.text

    row = {"channel": "sms", "body": "Hi ", "merge_field": "PatientFirstName"}
    response = _post(plus, "messages", _steps(row), action="insert-0", follow=True)
    assert response.status_code == 200
    assert ">Hi {{PatientFirstName}}</textarea>" in response.text
    response = _post(plus, "messages", _steps(row), action="insert-0", headers=HTMX)
    assert response.status_code == 200
    assert "<html" not in response.text
    assert response.text.strip().startswith('<li class="panel step-card" id="step-0">')
    assert ">Hi {{PatientFirstName}}</textarea>" in response.text

    # Another practice's templates are not offered.
    folder = template_folder_create(practice=other_practice, name="Theirs")
    theirs = template_save(
        practice=other_practice,
        folder=folder,
        data={"name": "T", "channel": "sms", "subject": "", "body": "secret"},
    )
    response = _post(plus, "messages", {"template": theirs.pk}, action="add_template")
    assert response.status_code == 400
    assert "Choose a template to start from." in response.text
    assert "secret" not in response.text


def test_reorder_and_remove_steps(plus):
    rows = _steps({"channel": "sms", "body": "first"}, {"channel": "sms", "body": "second"})
    response = _post(plus, "messages", rows, action="down-0", follow=True)
    text = response.text
    assert text.index(">second</textarea>") < text.index(">first</textarea>")
    response = _post(plus, "messages", rows, action="remove-0", follow=True)
    assert ">first</textarea>" not in response.text
    assert ">second</textarea>" in response.text
    assert _post(plus, "messages", rows, action="remove-7").status_code == 404


def test_preview_renders_a_real_patients_name(plus):
    practice = _practice(plus)
    practice.phone = "+13125550100"
    practice.save()
    _patients(
        practice,
        {"external_id": "A-1", "first_name": "Ada", "last_name": "Lovelace"},
        {"external_id": "B-2", "first_name": "Bob", "last_name": "Babbage"},
    )
    row = {"channel": "sms", "body": "Hi {{PatientFirstName}}, call {{PracticePhone}}"}
    data = {**_steps(row), "preview_patient": "Lovelace"}
    response = _post(plus, "messages", data, action="preview-0")
    assert response.status_code == 200
    assert "Hi Ada, call (312) 555-0100" in response.text
    response = _post(plus, "messages", data, action="preview-0", headers=HTMX)
    assert "<html" not in response.text
    assert "Hi Ada, call (312) 555-0100" in response.text
    assert "Lovelace" in response.text
    # Without a name: the first patient (by name).
    response = _post(plus, "messages", {**_steps(row), "preview_patient": ""}, action="preview-0")
    assert "Hi Bob" in response.text
    response = _post(plus, "messages", {**_steps(row), "preview_patient": "Nobody"}, "preview-0")
    assert "No patient matches \u201cNobody\u201d." in response.text


def test_preview_and_audience_count_show_times_in_the_practice_time_zone(plus):
    practice = _practice(plus)  # America/New_York; NOW is 11:00 there
    patient = PatientFactory(practice=practice, first_name="Ada", last_name="Lovelace")
    AppointmentFactory(patient=patient, start=dt.datetime(2026, 3, 12, 13, 30, tzinfo=dt.UTC))
    row = {"channel": "sms", "body": "See you {{AppointmentTime}}"}

    response = _post(plus, "messages", _steps(row), action="preview-0", headers=HTMX)

    assert "See you 9:30 AM" in response.text
    assert "with the appointment of Thu Mar 12, 2026 9:30 AM" in response.text
    audience = plus.get(_url("audience")).text
    assert "would enter if the campaign ran now (Tue Mar 10, 11:00 AM)" in audience


def test_preview_of_an_email_escapes_the_patients_values(plus):
    practice = _practice(plus)
    _patients(practice, {"external_id": "X", "first_name": "<script>x</script>", "last_name": "Z"})
    row = {"channel": "email", "subject": "Hi", "body": "<p>Hi {{PatientFirstName}}</p>"}
    response = _post(plus, "messages", _steps(row), action="preview-0", headers=HTMX)
    assert "<p>Hi &lt;script&gt;x&lt;/script&gt;</p>" in response.text
    assert "<script>x" not in response.text


def test_discard_a_draft(plus):
    _post(plus, "name", {"name": "Throw away"})
    assert (
        "Continue the unsaved draft \u201cThrow away\u201d"
        in plus.get(reverse("campaigns:drip_list")).text
    )
    response = plus.post(reverse("campaigns:drip_new_discard"))
    assert response.status_code == 302
    assert _draft(plus) is None


def test_send_a_test_to_myself(plus):
    practice = _practice(plus)
    _patients(practice, {"external_id": "A-1", "first_name": "Ada", "last_name": "Lovelace"})
    row = {"channel": "sms", "body": "Hi {{PatientFirstName}}"}
    data = {**_steps(row), "preview_patient": "Lovelace"}
    response = _post(plus, "messages", data, action="test-0")
    assert response.status_code == 400
    assert (
        'Add your mobile phone on <a href="/accounts/profile/">your profile page</a>'
        in response.text
    )
    assert not OutboundMessage.objects.exists()

    user = plus.membership.user
    user.phone = "+13125550177"
    user.save()
    response = _post(plus, "messages", data, action="test-0", follow=True)
    assert response.status_code == 200
    assert "sent to +13125550177" in response.text
    message = OutboundMessage.objects.get()
    assert (message.is_test, message.patient_id, message.campaign_id) == (True, None, None)
    sent = SandboxMessage.objects.get()
    assert (sent.to, sent.body) == ("+13125550177", "Hi Ada")
    # Without a preview patient the test speaks to the staff member by name.
    user.first_name = "Uma"
    user.save()
    _post(plus, "messages", {**_steps(row), "preview_patient": ""}, action="test-0")
    assert SandboxMessage.objects.order_by("-id").first().body == "Hi Uma"
    # A test is not a draft change.
    assert _draft(plus) is None or not _draft(plus).get("messages")


def test_an_email_test_goes_to_my_email_marked_as_a_test(plus):
    row = {"channel": "email", "subject": "Hello", "body": "<p>Hi</p>"}
    assert _post(plus, "messages", _steps(row), action="test-0", follow=True).status_code == 200
    sent = SandboxMessage.objects.get()
    assert (sent.to, sent.subject) == (plus.membership.user.email, "[Test] Hello")
