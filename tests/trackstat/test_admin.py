"""The operator's Django admin goes through the tenancy services (DESIGN §3).

What the admin changes about a practice, its memberships and its API keys is audited like the
same change on the Settings pages, a time-zone change moves the patients' local dates, and a
practice keeps at least one Administrator: a change that would leave none is refused with a
form error, never a 500.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import zoneinfo

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse

from patients.models import Patient
from patients.sync.appointments import appointments_upsert
from patients.sync.patients import patients_upsert
from tests.factories import MembershipFactory, PracticeFactory, UserFactory
from trackstat.models import ApiKey, AuditEvent, Membership, Practice, Role
from trackstat.services import (
    api_key_create,
    practice_operator_update,
    practice_settings_update,
)

pytestmark = pytest.mark.django_db

LAST_ADMINISTRATOR = "A practice needs at least one Administrator"
CHICAGO = zoneinfo.ZoneInfo("America/Chicago")


@pytest.fixture
def operator():
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def operator_client(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


def change_form_data(client: Client, url: str, **changes) -> dict:
    """What the browser would post back from the admin page at ``url`` (its form and inline
    formsets as shown), with ``changes``."""
    response = client.get(url)
    assert response.status_code == 200
    forms = [response.context["adminform"].form]
    data = {}
    for inline in response.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            data[form.add_prefix(name)] = "" if value is None else value
    data.update(changes)
    return data


def practice_url(practice: Practice) -> str:
    return reverse("admin:trackstat_practice_change", args=[practice.pk])


def membership_url(membership: Membership) -> str:
    return reverse("admin:trackstat_membership_change", args=[membership.pk])


# --- practices -----------------------------------------------------------------------------


def test_a_time_zone_change_in_the_admin_moves_local_dates_and_is_audited(
    operator, operator_client
):
    practice = PracticeFactory(time_zone="America/Chicago")
    patients_upsert(practice=practice, records=[{"external_id": "P1", "_index": 0}])
    # 23:30 in Chicago on the 14th is 00:30 on the 15th in New York.
    start = dt.datetime(2026, 3, 14, 23, 30, tzinfo=CHICAGO)
    result = appointments_upsert(
        practice=practice,
        records=[
            {
                "external_id": "A1",
                "patient_external_id": "P1",
                "start": start,
                "status": "completed",
                "_index": 0,
            }
        ],
    )
    assert not result.errors
    assert Patient.objects.get(external_id="P1").last_visit_checked_in == dt.date(2026, 3, 14)

    url = practice_url(practice)
    response = operator_client.post(
        url, change_form_data(operator_client, url, time_zone="America/New_York")
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Patient.objects.get(external_id="P1").last_visit_checked_in == dt.date(2026, 3, 15)
    assert str(practice.appointments.get().local_date) == "2026-03-15"
    event = AuditEvent.objects.get(practice=practice, action="practice.settings_update")
    assert event.actor == operator
    assert event.before == {"time_zone": "America/Chicago"}
    assert event.after == {"time_zone": "America/New_York"}


def test_a_slug_change_in_the_admin_is_audited_with_the_settings(operator, operator_client):
    practice = PracticeFactory(name="Main St", slug="main-st")
    url = practice_url(practice)

    response = operator_client.post(
        url, change_form_data(operator_client, url, slug="main-street", name="Main Street")
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    practice.refresh_from_db()
    assert (practice.slug, practice.name) == ("main-street", "Main Street")
    event = AuditEvent.objects.get(practice=practice)
    assert (event.action, event.actor) == ("practice.settings_update", operator)
    assert event.before == {"name": "Main St", "slug": "main-st"}
    assert event.after == {"name": "Main Street", "slug": "main-street"}


def test_saving_a_practice_unchanged_in_the_admin_writes_no_audit_entry(operator_client):
    practice = PracticeFactory()
    url = practice_url(practice)

    response = operator_client.post(url, change_form_data(operator_client, url))

    assert response.status_code == 302
    assert not AuditEvent.objects.exists()


def test_a_bad_value_in_the_admin_names_the_field_and_changes_nothing(operator_client):
    practice = PracticeFactory(time_zone="America/Chicago")
    url = practice_url(practice)

    response = operator_client.post(
        url, change_form_data(operator_client, url, time_zone="Mars/Olympus", slug="moved")
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "is not an IANA time zone" in " ".join(errors["time_zone"])
    practice.refresh_from_db()
    assert (practice.time_zone, practice.slug) != ("Mars/Olympus", "moved")
    assert not AuditEvent.objects.exists()


def test_adding_a_practice_in_the_admin_is_audited_as_created_by_the_operator(
    operator, operator_client
):
    url = reverse("admin:trackstat_practice_add")

    response = operator_client.post(
        url,
        change_form_data(
            operator_client,
            url,
            name="Admin Made",
            slug="admin-made",
            time_zone="America/Denver",
            sms_from="(312) 555-0123",
        ),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    practice = Practice.objects.get(slug="admin-made")
    assert (practice.time_zone, practice.sms_from) == ("America/Denver", "+13125550123")
    event = AuditEvent.objects.get(practice=practice)
    assert (event.action, event.actor) == ("practice.create", operator)
    assert event.after["slug"] == "admin-made"
    assert event.after["time_zone"] == "America/Denver"
    # The admin's own history points at the new practice.
    assert LogEntry.objects.get().object_id == str(practice.pk)


def test_only_the_operator_service_changes_a_slug():
    practice = PracticeFactory(slug="main-st")

    with pytest.raises(ValidationError) as settings_refused:
        practice_settings_update(practice=practice, actor=None, slug="taken-over")
    with pytest.raises(ValidationError) as operator_refused:
        practice_operator_update(practice=practice, actor=None, created_at=None)

    assert settings_refused.value.message_dict == {"slug": ["Not a practice setting."]}
    assert operator_refused.value.message_dict == {"created_at": ["Not a practice setting."]}
    practice.refresh_from_db()
    assert practice.slug == "main-st"


# --- memberships ---------------------------------------------------------------------------


def test_the_practice_page_lists_memberships_read_only_with_links(operator_client):
    practice = PracticeFactory()
    admin = MembershipFactory(practice=practice, role=Role.ADMINISTRATOR)
    MembershipFactory(practice=practice, role=Role.USER)
    url = practice_url(practice)

    page = operator_client.get(url).text

    assert membership_url(admin) in page
    assert reverse("admin:trackstat_membership_add") + f"?practice={practice.pk}" in page
    # Posting a role through the practice page changes nothing: roles change on the
    # Membership page, through the service.
    data = change_form_data(operator_client, url)
    index = next(
        key.split("-")[1]
        for key, value in data.items()
        if key.startswith("memberships-") and key.endswith("-id") and value == admin.pk
    )
    data[f"memberships-{index}-role"] = Role.USER
    data[f"memberships-{index}-DELETE"] = "on"
    response = operator_client.post(url, data)

    assert response.status_code == 302
    admin.refresh_from_db()
    assert admin.role == Role.ADMINISTRATOR
    assert not AuditEvent.objects.exists()


def test_a_role_change_in_the_admin_is_audited(operator, operator_client):
    practice = PracticeFactory()
    MembershipFactory(practice=practice, role=Role.ADMINISTRATOR)
    member = MembershipFactory(practice=practice, role=Role.USER)
    url = membership_url(member)

    response = operator_client.post(url, change_form_data(operator_client, url, role=Role.MANAGER))

    assert response.status_code == 302, response.context["adminform"].form.errors
    member.refresh_from_db()
    assert member.role == Role.MANAGER
    event = AuditEvent.objects.get(action="membership.change_role")
    assert (event.practice, event.actor) == (practice, operator)
    assert event.before == {"user": member.user.email, "role": "User"}
    assert event.after == {"user": member.user.email, "role": "Manager"}


def test_the_admin_refuses_to_demote_the_last_administrator_with_a_form_error(operator_client):
    admin = MembershipFactory(role=Role.ADMINISTRATOR)
    url = membership_url(admin)

    response = operator_client.post(url, change_form_data(operator_client, url, role=Role.MANAGER))

    assert response.status_code == 200
    assert LAST_ADMINISTRATOR in " ".join(response.context["adminform"].form.errors["role"])
    admin.refresh_from_db()
    assert admin.role == Role.ADMINISTRATOR
    assert not AuditEvent.objects.exists()


def test_the_admin_may_demote_an_administrator_when_another_remains(operator_client):
    admin = MembershipFactory(role=Role.ADMINISTRATOR)
    MembershipFactory(practice=admin.practice, role=Role.ADMINISTRATOR)
    url = membership_url(admin)

    response = operator_client.post(url, change_form_data(operator_client, url, role=Role.USER))

    assert response.status_code == 302
    admin.refresh_from_db()
    assert admin.role == Role.USER
    assert AuditEvent.objects.filter(action="membership.change_role").count() == 1


def test_a_membership_keeps_its_user_and_practice_in_the_admin(operator_client):
    member = MembershipFactory(role=Role.USER)
    elsewhere = PracticeFactory()
    someone = UserFactory()
    url = membership_url(member)

    response = operator_client.post(
        url,
        change_form_data(operator_client, url, practice=elsewhere.pk, user=someone.pk),
    )

    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.practice_id, member.user_id) != (elsewhere.pk, someone.pk)
    assert not Membership.objects.filter(practice=elsewhere).exists()


def test_adding_a_membership_in_the_admin_is_audited(operator, operator_client):
    practice = PracticeFactory()
    user = UserFactory()
    url = reverse("admin:trackstat_membership_add")

    response = operator_client.post(
        url,
        change_form_data(
            operator_client, url, practice=practice.pk, user=user.pk, role=Role.ADMINISTRATOR
        ),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    membership = Membership.objects.get(practice=practice, user=user)
    assert membership.role == Role.ADMINISTRATOR
    event = AuditEvent.objects.get(practice=practice)
    assert (event.action, event.actor) == ("membership.invite", operator)
    assert event.after == {"user": user.email, "role": "Administrator"}
    assert LogEntry.objects.get().object_id == str(membership.pk)


def test_adding_an_existing_membership_in_the_admin_names_the_problem(operator_client):
    member = MembershipFactory(role=Role.USER)
    url = reverse("admin:trackstat_membership_add")

    response = operator_client.post(
        url,
        change_form_data(
            operator_client,
            url,
            practice=member.practice_id,
            user=member.user_id,
            role=Role.ADMINISTRATOR,
        ),
    )

    assert response.status_code == 200
    assert "already exists" in response.text
    member.refresh_from_db()
    assert member.role == Role.USER
    assert not AuditEvent.objects.exists()


def test_removing_a_member_in_the_admin_is_audited(operator, operator_client):
    practice = PracticeFactory()
    MembershipFactory(practice=practice, role=Role.ADMINISTRATOR)
    member = MembershipFactory(practice=practice, role=Role.USER)
    url = reverse("admin:trackstat_membership_delete", args=[member.pk])

    response = operator_client.post(url, {"post": "yes"})

    assert response.status_code == 302
    assert not Membership.objects.filter(pk=member.pk).exists()
    event = AuditEvent.objects.get(action="membership.remove")
    assert (event.practice, event.actor) == (practice, operator)
    assert event.before == {"user": member.user.email, "role": "User"}
    assert LogEntry.objects.get(action_flag=DELETION).object_id == str(member.pk)


def test_the_admin_refuses_to_remove_the_last_administrator(operator_client):
    admin = MembershipFactory(role=Role.ADMINISTRATOR)
    url = reverse("admin:trackstat_membership_delete", args=[admin.pk])

    confirm = operator_client.get(url, follow=True)
    response = operator_client.post(url, {"post": "yes"}, follow=True)

    assert LAST_ADMINISTRATOR in confirm.text
    assert response.status_code == 200
    assert LAST_ADMINISTRATOR in response.text
    assert Membership.objects.filter(pk=admin.pk).exists()
    assert not AuditEvent.objects.exists()
    assert not LogEntry.objects.exists()


def test_memberships_have_no_bulk_delete_that_would_skip_the_rules(operator_client):
    admin = MembershipFactory(role=Role.ADMINISTRATOR)

    operator_client.post(
        reverse("admin:trackstat_membership_changelist"),
        {"action": "delete_selected", "_selected_action": [admin.pk], "post": "yes"},
    )

    assert Membership.objects.filter(pk=admin.pk).exists()


# --- API keys ------------------------------------------------------------------------------


def test_an_api_keys_revocation_time_cannot_be_typed_in_the_admin(operator_client):
    practice, elsewhere = PracticeFactory(), PracticeFactory()
    key = api_key_create(practice=practice, name="EMR").api_key
    url = reverse("admin:trackstat_apikey_change", args=[key.pk])

    operator_client.post(
        url,
        {
            "practice": elsewhere.pk,
            "name": "EMR",
            "revoked_at_0": "2026-01-01",
            "revoked_at_1": "10:00:00",
        },
    )

    key.refresh_from_db()
    assert key.revoked_at is None
    assert key.practice == practice
    assert not AuditEvent.objects.filter(action="api_key.revoke").exists()


def test_the_revoke_action_revokes_selected_keys_audited(operator, operator_client):
    practice, other = PracticeFactory(), PracticeFactory()
    first = api_key_create(practice=practice, name="EMR").api_key
    second = api_key_create(practice=other, name="CSV").api_key
    kept = api_key_create(practice=practice, name="Kept").api_key

    response = operator_client.post(
        reverse("admin:trackstat_apikey_changelist"),
        {"action": "revoke", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "Revoked 2 API keys." in response.text
    for key in (first, second, kept):
        key.refresh_from_db()
    assert first.revoked_at is not None
    assert second.revoked_at is not None
    assert kept.revoked_at is None
    events = AuditEvent.objects.filter(action="api_key.revoke")
    assert {(e.practice_id, e.target_id, e.actor_id) for e in events} == {
        (practice.pk, str(first.pk), operator.pk),
        (other.pk, str(second.pk), operator.pk),
    }


def test_revoking_a_revoked_key_again_writes_nothing(operator_client):
    key = api_key_create(practice=PracticeFactory(), name="EMR").api_key
    changelist = reverse("admin:trackstat_apikey_changelist")
    operator_client.post(changelist, {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    revoked_at = key.revoked_at

    response = operator_client.post(
        changelist, {"action": "revoke", "_selected_action": [key.pk]}, follow=True
    )

    assert "Revoked 0 API keys" in response.text
    key.refresh_from_db()
    assert key.revoked_at == revoked_at
    assert AuditEvent.objects.filter(action="api_key.revoke").count() == 1


def test_a_key_can_be_revoked_from_its_own_admin_page(operator_client):
    key = api_key_create(practice=PracticeFactory(), name="EMR").api_key
    url = reverse("admin:trackstat_apikey_change", args=[key.pk])
    assert "Revoke this key" in operator_client.get(url).text

    response = operator_client.post(
        url, {"CHANGE_FORM-action": "revoke", "_selected_action": [key.pk]}
    )

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert AuditEvent.objects.filter(action="api_key.revoke", target_id=str(key.pk)).exists()


def test_api_keys_are_not_deleted_in_the_admin(operator_client):
    key = api_key_create(practice=PracticeFactory(), name="EMR").api_key

    response = operator_client.post(
        reverse("admin:trackstat_apikey_delete", args=[key.pk]), {"post": "yes"}
    )

    assert response.status_code == 403
    assert ApiKey.objects.filter(pk=key.pk).exists()


# --- two changes at once -------------------------------------------------------------------


def _lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def _post_while_held(hold, post) -> object:
    """Run ``hold`` in a transaction of its own that stays open until ``post`` (in another
    thread, through the admin) waits on its lock; then commit it. Returns what ``post`` returned
    (or raised)."""
    held, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def holder():
        try:
            with transaction.atomic():
                hold()
                held.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    def poster():
        try:
            outcome["result"] = post()
        except Exception as error:  # the test reports whatever it was
            outcome["result"] = error
        finally:
            connection.close()

    first = threading.Thread(target=holder)
    first.start()
    assert held.wait(timeout=30)
    second = threading.Thread(target=poster)
    second.start()
    deadline = time.monotonic() + 30
    while _lock_waiters() == 0 and second.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting for a real process: the poster blocks on the held lock
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)
    return outcome["result"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="two transactions need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_two_administrators_demoted_at_once_in_the_admin_one_is_refused_on_the_form(operator):
    """Each form sees another Administrator and validates; the service, under its lock, sees
    the other demotion committed and refuses: the form comes back with the role's error."""
    practice = PracticeFactory()
    first = MembershipFactory(practice=practice, role=Role.ADMINISTRATOR)
    second = MembershipFactory(practice=practice, role=Role.ADMINISTRATOR)
    client = Client()
    client.force_login(operator)
    url = membership_url(second)
    data = change_form_data(client, url, role=Role.MANAGER)

    def demote_first():
        Membership.objects.select_for_update().filter(pk=first.pk).update(role=Role.MANAGER)

    response = _post_while_held(demote_first, lambda: client.post(url, data))

    assert not isinstance(response, Exception), response
    assert response.status_code == 200
    assert LAST_ADMINISTRATOR in " ".join(response.context["adminform"].form.errors["role"])
    second.refresh_from_db()
    assert second.role == Role.ADMINISTRATOR
    assert not AuditEvent.objects.filter(action="membership.change_role").exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="two transactions need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_a_sender_number_claimed_at_once_in_the_admin_is_the_fields_error(operator):
    claimant = PracticeFactory(sms_from="")
    practice = PracticeFactory(sms_from="")
    client = Client()
    client.force_login(operator)
    url = practice_url(practice)
    data = change_form_data(client, url, sms_from="(312) 555-0142", city="Shelbyville")

    def claim():
        Practice.objects.filter(pk=claimant.pk).update(sms_from="+13125550142")

    response = _post_while_held(claim, lambda: client.post(url, data))

    assert not isinstance(response, Exception), response
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors["sms_from"] == ["Another practice already uses this sender phone number."]
    assert form["city"].value() == "Shelbyville"  # what was typed is still there
    practice.refresh_from_db()
    assert (practice.sms_from, practice.city) == ("", "Springfield")  # nothing was saved
    assert not AuditEvent.objects.exists()
