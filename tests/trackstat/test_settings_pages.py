"""Settings for Administrators: users and roles, practice settings, API keys."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from tests.factories import MembershipFactory, UserFactory
from trackstat.models import ApiKey, AuditEvent, Membership, Role, User

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(member_client):
    return member_client(Role.ADMINISTRATOR)


def test_invite_new_user_sends_a_set_password_link_that_works(
    admin_client, django_capture_on_commit_callbacks
):
    practice = admin_client.membership.practice
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("settings_users"), {"email": "New.Person@Example.test", "role": Role.MANAGER}
        )
    assert response.status_code == 302
    membership = Membership.objects.get(practice=practice, user__email="new.person@example.test")
    assert membership.role == Role.MANAGER
    assert not membership.user.has_usable_password()
    assert AuditEvent.objects.filter(practice=practice, action="membership.invite").exists()

    assert len(mail.outbox) == 1
    link = re.search(r"https://trackstat\.test(/accounts/password-reset/\S+)", mail.outbox[0].body)
    assert link, mail.outbox[0].body
    invited = Client()
    form_url = invited.get(link.group(1), follow=True).redirect_chain[-1][0]
    response = invited.post(
        form_url, {"new_password1": "a-fine-long-pass", "new_password2": "a-fine-long-pass"}
    )
    assert response.status_code == 302
    assert invited.login(username="new.person@example.test", password="a-fine-long-pass")


def test_invite_existing_user_adds_membership_without_new_account(
    admin_client, django_capture_on_commit_callbacks
):
    existing = UserFactory(email="known@example.test")
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("settings_users"), {"email": "known@example.test", "role": Role.USER}
        )
    assert Membership.objects.filter(
        user=existing, practice=admin_client.membership.practice
    ).exists()
    assert User.objects.filter(email="known@example.test").count() == 1
    assert "practice switcher" in mail.outbox[0].body


def test_invite_rejects_bad_email_and_existing_member(
    admin_client, django_capture_on_commit_callbacks
):
    response = admin_client.post(reverse("settings_users"), {"email": "nope", "role": Role.USER})
    assert response.status_code == 400
    assert "Enter a valid email address." in response.text

    member = MembershipFactory(practice=admin_client.membership.practice)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("settings_users"), {"email": member.user.email, "role": Role.MANAGER}
        )
    assert response.status_code == 400
    assert "already a member" in response.text
    member.refresh_from_db()
    assert member.role == Role.USER
    assert len(mail.outbox) == 0


def test_change_role_is_audited(admin_client):
    member = MembershipFactory(practice=admin_client.membership.practice, role=Role.USER)
    response = admin_client.post(
        reverse("settings_member_role", args=[member.pk]), {"role": Role.USER_PLUS}
    )
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.role == Role.USER_PLUS
    event = AuditEvent.objects.get(action="membership.change_role")
    assert event.actor == admin_client.membership.user
    assert event.before == {"user": member.user.email, "role": "User"}
    assert event.after == {"user": member.user.email, "role": "User Plus"}


def test_change_role_with_htmx_returns_the_row(admin_client):
    member = MembershipFactory(practice=admin_client.membership.practice, role=Role.USER)
    response = admin_client.post(
        reverse("settings_member_role", args=[member.pk]),
        {"role": Role.MANAGER},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith(f'<tr id="member-{member.pk}"')
    assert "<html" not in response.text


def test_change_role_rejects_unknown_role(admin_client):
    member = MembershipFactory(practice=admin_client.membership.practice, role=Role.USER)
    admin_client.post(reverse("settings_member_role", args=[member.pk]), {"role": "99"})
    member.refresh_from_db()
    assert member.role == Role.USER


def test_last_administrator_cannot_be_demoted_or_removed(admin_client):
    own = admin_client.membership
    response = admin_client.post(
        reverse("settings_member_role", args=[own.pk]), {"role": Role.MANAGER}, follow=True
    )
    assert "at least one Administrator" in response.text
    response = admin_client.post(
        reverse("settings_member_remove", args=[own.pk]), {"confirmed": "yes"}, follow=True
    )
    assert "at least one Administrator" in response.text
    own.refresh_from_db()
    assert own.role == Role.ADMINISTRATOR
    assert not AuditEvent.objects.filter(action__in=["membership.change_role", "membership.remove"])


def test_an_administrator_can_step_down_when_another_exists(admin_client):
    practice = admin_client.membership.practice
    MembershipFactory(practice=practice, role=Role.ADMINISTRATOR)
    own = admin_client.membership
    admin_client.post(reverse("settings_member_role", args=[own.pk]), {"role": Role.MANAGER})
    own.refresh_from_db()
    assert own.role == Role.MANAGER
    # Now a Manager: the settings are closed to them.
    assert admin_client.get(reverse("settings_users")).status_code == 403


def test_remove_member_is_audited(admin_client):
    member = MembershipFactory(practice=admin_client.membership.practice, role=Role.USER)
    url = reverse("settings_member_remove", args=[member.pk])
    # Unconfirmed (no JavaScript): a confirmation page, and nothing happens.
    asked = admin_client.post(url)
    assert asked.status_code == 200
    assert f"Remove {member.user.email} from" in asked.text
    assert 'name="confirmed" value="yes"' in asked.text
    assert Membership.objects.filter(pk=member.pk).exists()
    admin_client.post(url, {"confirmed": "yes"})
    assert not Membership.objects.filter(pk=member.pk).exists()
    assert AuditEvent.objects.get(action="membership.remove").before["user"] == member.user.email


def test_role_and_remove_endpoints_refuse_get(admin_client):
    member = MembershipFactory(practice=admin_client.membership.practice)
    assert admin_client.get(reverse("settings_member_role", args=[member.pk])).status_code == 405
    assert admin_client.get(reverse("settings_member_remove", args=[member.pk])).status_code == 405


def practice_form(practice, **changes) -> dict:
    data = {
        "name": practice.name,
        "time_zone": practice.time_zone,
        "phone": "",
        "address_line1": "",
        "address_line2": "",
        "city": "",
        "state": "",
        "postal_code": "",
        "sending_window_start": "08:00",
        "sending_window_end": "21:00",
        "sms_from": practice.sms_from,
        "email_from": practice.email_from,
        "email_from_name": "",
        "online_scheduling_url": "",
    }
    data.update(changes)
    return data


def test_practice_settings_save_normalizes_phones_and_is_audited(admin_client):
    practice = admin_client.membership.practice
    response = admin_client.post(
        reverse("settings_practice"),
        practice_form(
            practice,
            time_zone="America/Denver",
            sms_from="(312) 555-0142",
            sending_window_start="09:00",
            sending_window_end="20:00",
        ),
    )
    assert response.status_code == 302
    practice.refresh_from_db()
    assert practice.time_zone == "America/Denver"
    assert practice.sms_from == "+13125550142"
    assert str(practice.sending_window_start) == "09:00:00"
    event = AuditEvent.objects.get(action="practice.settings_update")
    assert event.before["time_zone"] == "America/New_York"
    assert event.after["time_zone"] == "America/Denver"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone", "is not an IANA time zone"),
        ({"sms_from": "555-01"}, "sms_from", "Enter a valid phone number."),
        ({"email_from": "not-an-email"}, "email_from", "Enter a valid email address."),
        ({"sending_window_start": "06:00"}, "sending_window_start", "before 08:00"),
        ({"sending_window_end": "22:30"}, "sending_window_end", "after 21:00"),
        (
            {"sending_window_start": "12:00", "sending_window_end": "10:00"},
            "sending_window_end",
            "must end after it starts",
        ),
    ],
)
def test_practice_settings_reject_bad_values_naming_the_field(
    admin_client, changes, field, message
):
    practice = admin_client.membership.practice
    before = (practice.time_zone, practice.sms_from, practice.email_from)
    response = admin_client.post(reverse("settings_practice"), practice_form(practice, **changes))
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    practice.refresh_from_db()
    assert (practice.time_zone, practice.sms_from, practice.email_from) == before


def test_api_key_is_shown_once_and_stored_hashed(admin_client):
    response = admin_client.post(reverse("settings_api_keys"), {"name": "ChiroTouch"})
    assert response.status_code == 302  # Post/Redirect/Get: a refresh creates no second key
    response = admin_client.get(response["Location"])
    secret = response.context["issued"]["secret"]
    assert secret in response.text
    key = ApiKey.objects.get(name="ChiroTouch")
    assert secret not in key.digest
    assert len(key.digest) == 64
    assert secret not in admin_client.get(reverse("settings_api_keys")).text


def test_api_key_needs_a_name(admin_client):
    response = admin_client.post(reverse("settings_api_keys"), {"name": ""})
    assert response.status_code == 400
    assert not ApiKey.objects.exists()


def test_api_key_revoke(admin_client):
    admin_client.post(reverse("settings_api_keys"), {"name": "EMR"})
    key = ApiKey.objects.get(name="EMR")
    url = reverse("settings_api_key_revoke", args=[key.pk])
    asked = admin_client.post(url)
    assert asked.status_code == 200
    assert "Revoke the API key “EMR”?" in asked.text
    key.refresh_from_db()
    assert key.revoked_at is None
    admin_client.post(url, {"confirmed": "yes"})
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert AuditEvent.objects.filter(action="api_key.revoke", target_id=str(key.pk)).exists()


def test_refreshing_after_creating_a_key_creates_no_second_key(admin_client):
    """Issue 16, item 9: the create answers with a redirect; the page it lands on, loaded
    again (a refresh), neither creates a key nor shows the secret again."""
    response = admin_client.post(reverse("settings_api_keys"), {"name": "EMR"})
    assert response.status_code == 302
    first = admin_client.get(response["Location"])
    assert "New key: EMR" in first.text
    again = admin_client.get(response["Location"])
    assert "New key: EMR" not in again.text
    assert ApiKey.objects.filter(name="EMR").count() == 1
