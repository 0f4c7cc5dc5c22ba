"""The campaign pages: drip list (bell, toggle, delete), blasts (create, recipients, enable, read
only once sent), the template library, and every page's and endpoint's access rules."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns import urls as campaign_urls
from campaigns.language.spec import CampaignSerializer
from campaigns.models import BlastExclusion, Campaign, MessageTemplate, TemplateFolder
from campaigns.selectors import audience
from campaigns.services import campaign_create, template_folder_create, template_save
from patients.sync.patients import patients_upsert
from tests.factories import PatientFactory, UserFactory
from trackstat.models import AuditEvent, Role

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def plus(member_client):
    return member_client(Role.USER_PLUS)


def _practice(client):
    return client.membership.practice


def _campaign(practice, **data) -> Campaign:
    data = {
        "name": "Birthday",
        "trigger": {"type": "birthday", "offset_days": 0},
        "schedule": {"frequency": "daily", "time": "10:00"},
        "messages": [{"channel": "sms", "body": "Happy birthday {{PatientFirstName}}"}],
        **data,
    }
    if data.get("kind") == "blast":
        for name in ("trigger", "schedule"):
            data.pop(name, None)
    serializer = CampaignSerializer(data=data)
    assert serializer.is_valid(), serializer.errors
    return campaign_create(practice=practice, data=serializer.validated_data, actor=None)


def _blast(practice, **data) -> Campaign:
    return _campaign(
        practice,
        **{
            "name": "Spring open house",
            "kind": "blast",
            "filters": {"status": "active"},
            "messages": [{"channel": "sms", "body": "Hi {{PatientFirstName}}, join us!"}],
            **data,
        },
    )


def _patients(practice, *records):
    result = patients_upsert(
        practice=practice, records=[{"_index": i, **r} for i, r in enumerate(records)]
    )
    assert result.errors == []


# --- drip list ---------------------------------------------------------------------------------


def test_drip_list_shows_name_trigger_steps_bell_and_toggle(plus, other_practice):
    practice = _practice(plus)
    on = _campaign(practice, name="Birthday greetings", enabled=True)
    off = _campaign(
        practice,
        name="Reactivation",
        trigger={
            "type": "last_visit_checked_in",
            "when": "days_ago",
            "days": 180,
            "match": "at_least",
        },
        messages=[
            {"channel": "sms", "body": "a"},
            {
                "channel": "email",
                "subject": "s",
                "body": "<p>b</p>",
                "delay": {"value": 3, "unit": "days"},
            },
        ],
    )
    _campaign(other_practice, name="Not ours")

    response = plus.get(reverse("campaigns:drip_list"))

    assert response.status_code == 200
    text = response.text
    assert "Birthday greetings" in text
    assert "On the patient&#x27;s birthday" in text
    assert "Last visit at least 180 days ago" in text
    assert "· 1 SMS · 1 email" in text
    assert "Not ours" not in text
    assert f'id="campaign-{on.pk}"' in text
    assert 'class="bell on"' in text
    assert 'class="bell off"' in text
    assert '<span class="sr-only">On</span>' in text
    assert '<span class="sr-only">Off</span>' in text
    assert reverse("campaigns:drip_toggle", args=[off.pk]) in text
    assert reverse("campaigns:drip_new") in text
    assert "+ Add Campaign" in text
    assert reverse("campaigns:campaign_delete", args=[off.pk]) in text


def test_drip_list_queries_do_not_grow_with_campaigns(plus, django_assert_max_num_queries):
    practice = _practice(plus)
    for n in range(2):
        _campaign(practice, name=f"C{n}")
    with CaptureQueriesContext(connection) as few:
        assert plus.get(reverse("campaigns:drip_list")).status_code == 200
    for n in range(2, 12):
        _campaign(practice, name=f"C{n}")
    with django_assert_max_num_queries(len(few)):
        response = plus.get(reverse("campaigns:drip_list"))
    assert response.text.count('class="bell off"') == 12


def test_toggle_turns_a_campaign_on_and_off_and_is_audited(plus):
    campaign = _campaign(_practice(plus), name="Birthday")
    url = reverse("campaigns:drip_toggle", args=[campaign.pk])

    asked = plus.post(url, {"enabled": "true"}, headers=HTMX)  # the switch asks first
    assert asked.status_code == 200
    assert "Turn on “Birthday”? 0 patients match it now" in asked.text
    campaign.refresh_from_db()
    assert campaign.enabled is False
    asked = plus.post(url, {"enabled": "true"})  # without JavaScript: a confirmation page
    assert "Turn on “Birthday”?" in asked.text
    assert "<html" in asked.text
    campaign.refresh_from_db()
    assert campaign.enabled is False

    response = plus.post(url, {"enabled": "true", "confirmed": "yes"}, headers=HTMX)

    assert response.status_code == 200
    assert response.text.strip().startswith(f'<tr id="campaign-{campaign.pk}">')
    assert "<html" not in response.text
    assert 'class="bell on"' in response.text
    assert 'aria-checked="true"' in response.text
    campaign.refresh_from_db()
    assert campaign.enabled is True
    assert campaign.enabled_at is not None
    assert AuditEvent.objects.filter(action="campaign.update", target_id=str(campaign.pk)).exists()

    response = plus.post(url, {"enabled": "false"})  # without JavaScript
    assert response.status_code == 302
    assert response["Location"] == reverse("campaigns:drip_list")
    campaign.refresh_from_db()
    assert campaign.enabled is False

    assert plus.post(url, {"enabled": "maybe"}, headers=HTMX).status_code == 400
    campaign.refresh_from_db()
    assert campaign.enabled is False


def test_delete_asks_then_deletes(plus):
    campaign = _campaign(_practice(plus), name="Old one")
    url = reverse("campaigns:campaign_delete", args=[campaign.pk])
    page = plus.get(url)
    assert page.status_code == 200
    assert "Delete “Old one”?" in page.text
    assert Campaign.objects.filter(pk=campaign.pk).exists()

    response = plus.post(url)

    assert response.status_code == 302
    assert response["Location"] == reverse("campaigns:drip_list")
    assert not Campaign.objects.filter(pk=campaign.pk).exists()
    assert AuditEvent.objects.filter(action="campaign.delete").exists()


# --- blasts -----------------------------------------------------------------------------------


def test_blast_create_preview_remove_a_recipient_and_put_them_back(plus):
    practice = _practice(plus)
    _patients(
        practice,
        {"external_id": "1", "first_name": "Ada", "last_name": "Lovelace"},
        {"external_id": "2", "first_name": "Bob", "last_name": "Babbage"},
        {"external_id": "3", "first_name": "Cy", "last_name": "Gone", "status": "inactive"},
    )

    response = plus.post(
        reverse("campaigns:blast_new"),
        {
            "name": "Holiday hours",
            "filter-status": "active",
            "channel": "sms",
            "body": "Hi {{PatientFirstName}}, we are closed Friday.",
            "send_mode": "asap",
        },
    )

    assert response.status_code == 302, response.text
    blast = Campaign.objects.get(practice=practice, kind="blast")
    assert response["Location"] == reverse("campaigns:blast_detail", args=[blast.pk])
    assert blast.enabled is False
    assert blast.filters == {"status": "active"}
    assert blast.send_at is None

    page = plus.get(response["Location"])
    assert page.status_code == 200
    assert "Recipients (2)" in page.text
    assert "Lovelace" in page.text
    assert "Gone" not in page.text
    assert "Hi Bob, we are closed Friday." in page.text  # the preview, for the first recipient

    ada = practice.patients.get(external_id="1")
    url = reverse("campaigns:blast_recipient", args=[blast.pk, ada.pk])
    response = plus.post(url, {"included": "false"}, headers=HTMX)
    assert response.status_code == 200
    assert response.text.strip().startswith(f'<tr id="recipient-{ada.pk}" class="removed">')
    assert "Put back" in response.text
    assert list(audience(blast, at=timezone.now()).values_list("external_id", flat=True)) == ["2"]
    assert "Recipients (1)" in plus.get(reverse("campaigns:blast_detail", args=[blast.pk])).text

    response = plus.post(url, {"included": "true"})  # without JavaScript
    assert response.status_code == 302
    assert not BlastExclusion.objects.filter(campaign=blast).exists()
    assert audience(blast, at=timezone.now()).count() == 2


def test_blast_scheduled_at_a_local_time_then_enabled(plus):
    practice = _practice(plus)  # America/New_York
    response = plus.post(
        reverse("campaigns:blast_new"),
        {
            "name": "Later",
            "channel": "email",
            "subject": "News",
            "body": "<p>Hello</p>",
            "send_mode": "at",
            "send_at": "2099-07-04T09:30",
        },
    )
    assert response.status_code == 302, response.text
    blast = Campaign.objects.get(practice=practice, kind="blast")
    assert blast.send_at == dt.datetime(2099, 7, 4, 13, 30, tzinfo=dt.UTC)
    edit = plus.get(reverse("campaigns:blast_edit", args=[blast.pk]))
    assert 'value="2099-07-04T09:30"' in edit.text

    url = reverse("campaigns:blast_enable", args=[blast.pk])
    asked = plus.post(url, {"enabled": "true"})  # not confirmed: asked, nothing scheduled
    assert "Schedule “Later” for Jul 4, 9:30 AM EDT to 0 patients?" in asked.text
    blast.refresh_from_db()
    assert blast.enabled is False
    response = plus.post(url, {"enabled": "true", "confirmed": "yes"})
    assert response.status_code == 302
    blast.refresh_from_db()
    assert blast.enabled is True
    assert "Scheduled" in plus.get(reverse("campaigns:blast_list")).text


def test_blast_pages_show_the_send_time_in_the_practice_time_zone(plus):
    practice = _practice(plus)  # America/New_York: 13:30 UTC on 4 July is 9:30 EDT
    blast = _blast(practice, send_at="2099-07-04T13:30:00Z")

    assert "2099-07-04 9:30 AM EDT" in plus.get(reverse("campaigns:blast_list")).text
    detail = plus.get(reverse("campaigns:blast_detail", args=[blast.pk])).text
    assert "2099-07-04 9:30 AM EDT" in detail
    assert "Schedule for Jul 4, 9:30 AM" in detail
    response = plus.post(
        reverse("campaigns:blast_enable", args=[blast.pk]),
        {"enabled": "true", "confirmed": "yes"},
        follow=True,
    )
    assert "is scheduled for 2099-07-04 09:30 EDT." in response.text
    Campaign.objects.filter(pk=blast.pk).update(
        sent_at=dt.datetime(2099, 7, 4, 13, 31, tzinfo=dt.UTC)
    )
    assert "Sent 2099-07-04 9:31 AM EDT" in plus.get(reverse("campaigns:blast_list")).text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"send_mode": "at", "send_at": "2000-01-01T10:00"}, "Choose a time in the future."),
        ({"send_mode": "at", "send_at": ""}, "Choose when to send"),
        ({"body": "Your visit {{AppointmentDate}}"}, "needs a trigger with an appointment"),
        ({"body": ""}, "This field may not be blank."),
        ({"channel": "email", "subject": ""}, "An email needs a subject."),
        ({"name": ""}, "Give it a name."),
    ],
)
def test_blast_form_invalid_input_is_a_400(plus, data, message):
    response = plus.post(
        reverse("campaigns:blast_new"),
        {"name": "B", "channel": "sms", "body": "Hi", "send_mode": "asap", **data},
    )
    assert response.status_code == 400
    assert message in response.text
    assert not Campaign.objects.exists()


def test_a_sent_blast_is_read_only(plus):
    practice = _practice(plus)
    patient = PatientFactory(practice=practice)
    blast = _blast(practice, enabled=True)
    Campaign.objects.filter(pk=blast.pk).update(sent_at=timezone.now())
    before = Campaign.objects.get(pk=blast.pk)

    page = plus.get(reverse("campaigns:blast_detail", args=[blast.pk]))
    assert page.status_code == 200
    assert "read-only" in page.text
    assert reverse("campaigns:blast_edit", args=[blast.pk]) not in page.text
    assert reverse("campaigns:blast_recipient", args=[blast.pk, patient.pk]) not in page.text

    assert plus.get(reverse("campaigns:blast_edit", args=[blast.pk])).status_code == 302
    edit = plus.post(
        reverse("campaigns:blast_edit", args=[blast.pk]),
        {"name": "Changed", "channel": "sms", "body": "x", "send_mode": "asap"},
    )
    assert edit.status_code == 400
    recipient = plus.post(
        reverse("campaigns:blast_recipient", args=[blast.pk, patient.pk]), {"included": "false"}
    )
    assert recipient.status_code == 400
    enable = plus.post(reverse("campaigns:blast_enable", args=[blast.pk]), {"enabled": "false"})
    assert enable.status_code == 400
    assert plus.post(reverse("campaigns:campaign_delete", args=[blast.pk])).status_code == 400

    after = Campaign.objects.get(pk=blast.pk)
    assert (after.name, after.enabled, after.updated_at) == (
        before.name,
        before.enabled,
        before.updated_at,
    )
    assert not BlastExclusion.objects.exists()
    assert "Sent" in plus.get(reverse("campaigns:blast_list")).text


def test_blast_recipients_are_paginated(plus):
    practice = _practice(plus)
    _patients(
        practice, *[{"external_id": f"P{n:03d}", "last_name": f"N{n:03d}"} for n in range(55)]
    )
    blast = _blast(practice, filters={})
    url = reverse("campaigns:blast_detail", args=[blast.pk])
    first = plus.get(url).text
    assert "Recipients (55)" in first
    assert "Page 1 of 2" in first
    assert "N054" not in first
    assert "N054" in plus.get(url, {"page": 2}).text


# --- templates ---------------------------------------------------------------------------------


def test_master_library_is_visible_and_read_only(plus):
    master = MessageTemplate.objects.filter(practice=None)
    assert master.count() == 6
    page = plus.get(reverse("campaigns:template_list"))
    assert page.status_code == 200
    assert "TrackStat library" in page.text
    assert "Master library · read-only" in page.text
    reminder = master.get(name="Appointment reminder")
    assert "{{AppointmentDate}}" in reminder.body
    assert "{{AppointmentTime}}" in reminder.body
    assert "{{OnlineSchedulingLink}}" in master.get(name="Reactivation").body
    assert reverse("campaigns:template_edit", args=[reminder.pk]) not in page.text

    url = reverse("campaigns:template_edit", args=[reminder.pk])
    assert plus.get(url).status_code == 404
    response = plus.post(
        url, {"folder": reminder.folder_id, "name": "Mine", "channel": "sms", "body": "x"}
    )
    assert response.status_code == 404
    reminder.refresh_from_db()
    assert reminder.name == "Appointment reminder"


def test_master_library_templates_pass_step_validation():
    for template in MessageTemplate.objects.filter(practice=None):
        serializer = CampaignSerializer(
            data={
                "name": "t",
                "trigger": {"type": "scheduled_appointment", "when": "days_before", "days": 1},
                "schedule": {"frequency": "daily", "time": "10:00"},
                "messages": [
                    {
                        "channel": template.channel,
                        "subject": template.subject,
                        "body": template.body,
                    }
                ],
            }
        )
        assert serializer.is_valid(), (template.name, serializer.errors)


def test_master_library_migration_is_reversible():
    module = importlib.import_module("campaigns.migrations.0003_master_library")
    module.remove_library(django_apps, None)
    assert not TemplateFolder.objects.filter(practice=None).exists()
    assert not MessageTemplate.objects.filter(practice=None).exists()
    module.create_library(django_apps, None)
    module.create_library(django_apps, None)  # idempotent
    assert (
        MessageTemplate.objects.filter(practice=None, folder__name="TrackStat library").count() == 6
    )


def test_practice_templates_create_and_edit(plus):
    practice = _practice(plus)
    folder = template_folder_create(practice=practice, name="Front desk")
    page = plus.get(reverse("campaigns:template_new"), {"folder": folder.pk})
    assert page.status_code == 200

    response = plus.post(
        reverse("campaigns:template_new"),
        {
            "folder": folder.pk,
            "name": "Rain day",
            "channel": "sms",
            "body": "Hi {{PatientFirstName}}",
        },
    )

    assert response.status_code == 302
    template = MessageTemplate.objects.get(practice=practice, name="Rain day")
    assert template.folder == folder
    listing = plus.get(reverse("campaigns:template_list")).text
    assert "Rain day" in listing
    assert reverse("campaigns:template_edit", args=[template.pk]) in listing

    url = reverse("campaigns:template_edit", args=[template.pk])
    assert 'value="Rain day"' in plus.get(url).text
    response = plus.post(
        url,
        {
            "folder": folder.pk,
            "name": "Rain day email",
            "channel": "email",
            "subject": "Closed",
            "body": "<p>Closed</p><script>x</script>",
        },
    )
    assert response.status_code == 302
    template.refresh_from_db()
    assert (template.name, template.channel, template.subject) == (
        "Rain day email",
        "email",
        "Closed",
    )
    assert "<script>" not in template.body

    response = plus.post(
        url, {"folder": folder.pk, "name": "X", "channel": "sms", "body": "{{Nope}}"}
    )
    assert response.status_code == 400
    assert "Unknown merge field {{Nope}}." in response.text


def test_templates_cannot_go_into_master_or_other_practice_folders(plus, other_practice):
    template_folder_create(practice=_practice(plus), name="Ours")
    master = TemplateFolder.objects.get(practice=None)
    theirs = template_folder_create(practice=other_practice, name="Theirs")
    for folder in (master, theirs):
        response = plus.post(
            reverse("campaigns:template_new"),
            {"folder": folder.pk, "name": "Sneaky", "channel": "sms", "body": "x"},
        )
        assert response.status_code == 400
        assert "Select a valid choice" in response.text
    assert not MessageTemplate.objects.filter(name="Sneaky").exists()


def test_folder_creation_is_for_managers(plus, member_client):
    practice = _practice(plus)
    url = reverse("campaigns:template_folder_new")
    assert "New folder" not in plus.get(reverse("campaigns:template_list")).text
    assert plus.post(url, {"name": "Mine"}).status_code == 403
    assert not TemplateFolder.objects.filter(practice=practice).exists()

    manager = member_client(Role.MANAGER, practice=practice)
    assert "New folder" in manager.get(reverse("campaigns:template_list")).text
    response = manager.post(url, {"name": "Mine"})
    assert response.status_code == 302
    assert TemplateFolder.objects.filter(practice=practice, name="Mine").exists()
    duplicate = manager.post(url, {"name": "Mine"})
    assert duplicate.status_code == 400
    assert "A folder of that name exists." in duplicate.text


# --- access: every page and endpoint -----------------------------------------------------------


def _objects(practice):
    """One of each object the URLs take, in ``practice``."""
    drip = _campaign(practice, name="Drip")
    blast = _blast(practice)
    patient = PatientFactory(practice=practice)
    folder = template_folder_create(practice=practice, name="F")
    template = template_save(
        practice=practice,
        folder=folder,
        data={"name": "T", "channel": "sms", "subject": "", "body": "Hi"},
    )
    return {"drip": drip, "blast": blast, "patient": patient, "template": template}


# (url name, args from the objects, methods it answers; a POST-only endpoint lists only POST)
ENDPOINTS = [
    ("campaigns:drip_list", lambda o: [], ["GET"]),
    ("campaigns:drip_new", lambda o: [], ["GET"]),
    ("campaigns:drip_new_step", lambda o: ["name"], ["GET", "POST"]),
    ("campaigns:drip_new_step", lambda o: ["audience"], ["GET", "POST"]),
    ("campaigns:drip_new_step", lambda o: ["messages"], ["GET", "POST"]),
    ("campaigns:drip_new_step", lambda o: ["goals"], ["GET", "POST"]),
    ("campaigns:drip_new_step", lambda o: ["review"], ["GET", "POST"]),
    ("campaigns:drip_new_trigger_options", lambda o: [], ["GET"]),
    ("campaigns:drip_new_audience_count", lambda o: [], ["GET"]),
    ("campaigns:drip_new_discard", lambda o: [], ["POST"]),
    ("campaigns:drip_detail", lambda o: [o["drip"].pk], ["GET"]),
    ("campaigns:drip_edit", lambda o: [o["drip"].pk], ["GET"]),
    ("campaigns:drip_edit_step", lambda o: [o["drip"].pk, "name"], ["GET", "POST"]),
    ("campaigns:drip_edit_step", lambda o: [o["drip"].pk, "audience"], ["GET", "POST"]),
    ("campaigns:drip_edit_step", lambda o: [o["drip"].pk, "messages"], ["GET", "POST"]),
    ("campaigns:drip_edit_step", lambda o: [o["drip"].pk, "goals"], ["GET", "POST"]),
    ("campaigns:drip_edit_step", lambda o: [o["drip"].pk, "review"], ["GET", "POST"]),
    ("campaigns:drip_edit_trigger_options", lambda o: [o["drip"].pk], ["GET"]),
    ("campaigns:drip_edit_audience_count", lambda o: [o["drip"].pk], ["GET"]),
    ("campaigns:drip_edit_discard", lambda o: [o["drip"].pk], ["POST"]),
    ("campaigns:drip_toggle", lambda o: [o["drip"].pk], ["POST"]),
    ("campaigns:sms_count", lambda o: [], ["POST"]),
    ("campaigns:campaign_delete", lambda o: [o["drip"].pk], ["GET", "POST"]),
    ("campaigns:blast_list", lambda o: [], ["GET"]),
    ("campaigns:blast_new", lambda o: [], ["GET", "POST"]),
    ("campaigns:blast_detail", lambda o: [o["blast"].pk], ["GET"]),
    ("campaigns:blast_edit", lambda o: [o["blast"].pk], ["GET", "POST"]),
    ("campaigns:blast_enable", lambda o: [o["blast"].pk], ["POST"]),
    ("campaigns:blast_recipient", lambda o: [o["blast"].pk, o["patient"].pk], ["POST"]),
    ("campaigns:template_list", lambda o: [], ["GET"]),
    ("campaigns:template_new", lambda o: [], ["GET", "POST"]),
    ("campaigns:template_edit", lambda o: [o["template"].pk], ["GET", "POST"]),
    ("campaigns:template_folder_new", lambda o: [], ["POST"]),
    ("campaigns:patient_why", lambda o: [o["patient"].pk], ["GET"]),
    ("campaigns:patient_campaign_why", lambda o: [o["patient"].pk, o["drip"].pk], ["GET"]),
]
MANAGER_ONLY = {"campaigns:template_folder_new"}


def test_the_endpoint_table_covers_every_campaign_url():
    names = {f"campaigns:{pattern.name}" for pattern in campaign_urls.urlpatterns}
    assert names <= {name for name, _, _ in ENDPOINTS}


def _call(client, method, url):
    return client.get(url) if method == "GET" else client.post(url, {})


def test_a_user_gets_403_on_every_campaign_page_and_endpoint(member_client):
    client = member_client(Role.USER)
    objects = _objects(client.membership.practice)
    for name, args, methods in ENDPOINTS:
        url = reverse(name, args=args(objects))
        for method in methods:
            assert _call(client, method, url).status_code == 403, (name, method)
    assert Campaign.objects.count() == 2
    assert Campaign.objects.filter(enabled=True).count() == 0


def test_user_plus_opens_every_page(plus):
    objects = _objects(_practice(plus))
    for name, args, methods in ENDPOINTS:
        if "GET" not in methods or name in MANAGER_ONLY:
            continue
        response = plus.get(reverse(name, args=args(objects)))
        assert response.status_code in (200, 302), name
        if response.status_code == 302:  # the wizard's entry points go to step 1
            assert plus.get(response["Location"]).status_code == 200, name


def test_another_practices_ids_are_404_everywhere(plus, other_practice):
    theirs = _objects(other_practice)
    mine = _objects(_practice(plus))
    for name, args, methods in ENDPOINTS:
        if name in MANAGER_ONLY:
            continue
        their_args = args(theirs)
        if not any(isinstance(a, int) for a in their_args):
            continue
        for index in range(len(their_args)):
            # Each id alone is another practice's (the others are ours).
            mixed = [
                theirs_arg if i == index else mine_arg
                for i, (theirs_arg, mine_arg) in enumerate(zip(their_args, args(mine), strict=True))
            ]
            if not isinstance(mixed[index], int):
                continue
            url = reverse(name, args=mixed)
            for method in methods:
                assert _call(plus, method, url).status_code == 404, (name, mixed, method)
    assert Campaign.objects.filter(practice=other_practice).count() == 2
    assert not BlastExclusion.objects.exists()


def test_logged_out_visitors_are_sent_to_login():
    client = Client()
    objects = _objects(PatientFactory().practice)
    for name, args, methods in ENDPOINTS:
        url = reverse(name, args=args(objects))
        for method in methods:
            response = _call(client, method, url)
            assert response.status_code == 302, (name, method)
            assert response["Location"].startswith(reverse("login")), (name, method)


def test_get_on_post_only_endpoints_is_405(plus):
    objects = _objects(_practice(plus))
    post_only = [(n, a) for n, a, methods in ENDPOINTS if methods == ["POST"]]
    assert len(post_only) == 7
    for name, args in post_only:
        assert plus.get(reverse(name, args=args(objects))).status_code == 405, name


# --- the operator's admin ----------------------------------------------------------------------


def test_admin_shows_campaigns_read_mostly_and_validates_master_templates(client):
    operator = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(operator)
    campaign = _campaign(PatientFactory().practice, name="Birthday")
    change = client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
    assert change.status_code == 200
    assert "Happy birthday {{PatientFirstName}}" in change.text  # the steps, inline
    assert client.get(reverse("admin:campaigns_campaign_add")).status_code == 403
    response = client.post(
        reverse("admin:campaigns_campaign_changelist"),
        {"action": "turn_on", "_selected_action": [campaign.pk]},
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.enabled is True
    assert AuditEvent.objects.filter(action="campaign.update", actor=operator).exists()

    folder = TemplateFolder.objects.get(practice=None)
    add = reverse("admin:campaigns_messagetemplate_add")
    data = {"folder": folder.pk, "name": "Op", "channel": "sms", "subject": ""}
    response = client.post(add, {**data, "body": "Hi {{Nope}}"})
    assert response.status_code == 200
    assert "Unknown merge field {{Nope}}." in response.text
    assert client.post(add, {**data, "body": "Hi {{PatientFirstName}}"}).status_code == 302
    assert MessageTemplate.objects.get(name="Op").practice is None


def test_removing_a_recipient_updates_the_numbers_on_the_page(plus):
    """Issue 16, item 8: the row's htmx answer carries the page's counts out of band."""
    practice = _practice(plus)
    blast = _blast(practice)
    for n in (1, 2, 3):
        PatientFactory(practice=practice, external_id=str(n), phone=f"+1312555010{n}")
    patient = practice.patients.get(external_id="1")
    url = reverse("campaigns:blast_recipient", args=[blast.pk, patient.pk])

    response = plus.post(url, {"included": "false"}, headers=HTMX)

    assert response.status_code == 200
    text = response.text
    assert '<h2 id="recipients-heading" hx-swap-oob="true">Recipients (2)</h2>' in text
    assert '<h2 id="removed-heading" hx-swap-oob="true">Removed by staff (1)</h2>' in text
    assert 'id="blast-enable" hx-swap-oob="true"' in text
    assert "to 2 recipients" in text
    assert "to 2 patients" in text  # the Enable question too
