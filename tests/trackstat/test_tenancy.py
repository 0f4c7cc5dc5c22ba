"""The current practice, the practice switcher and practice-scoped lookups."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import MembershipFactory, PracticeFactory
from trackstat.models import ApiKey, Membership, Role
from trackstat.services import api_key_create

pytestmark = pytest.mark.django_db


def test_home_shows_the_current_practice(member_client):
    client = member_client(Role.USER)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert client.membership.practice.name in response.text


def test_anonymous_user_is_sent_to_login():
    from django.test import Client

    response = Client().get(reverse("settings_users"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_user_without_membership_sees_no_practice_and_gets_403(client, django_user_model):
    user = django_user_model.objects.create_user(email="lonely@example.test", password="x" * 12)
    client.force_login(user)
    assert "No practice yet" in client.get(reverse("home")).text
    assert client.get(reverse("patients:list")).status_code == 403


def test_switcher_changes_the_current_practice(client):
    first = MembershipFactory(role=Role.ADMINISTRATOR, practice=PracticeFactory(name="Alpha"))
    second = MembershipFactory(
        user=first.user, role=Role.USER, practice=PracticeFactory(name="Beta")
    )
    client.force_login(first.user)

    page = client.get(reverse("home")).text
    assert "Alpha" in page
    assert 'name="practice"' in page

    response = client.post(reverse("practice_switch"), {"practice": second.practice_id})
    assert response.status_code == 302
    assert "Beta" in client.get(reverse("home")).text
    # As a User in Beta the Administrator-only settings are closed.
    assert client.get(reverse("settings_users")).status_code == 403


def test_switcher_refuses_a_practice_the_user_does_not_belong_to(client):
    membership = MembershipFactory(role=Role.ADMINISTRATOR)
    foreign = PracticeFactory()
    client.force_login(membership.user)
    response = client.post(reverse("practice_switch"), {"practice": foreign.pk})
    assert response.status_code == 404
    assert client.get(reverse("home")).context["current_practice"] == membership.practice


def test_switcher_rejects_bad_input_and_get(client):
    membership = MembershipFactory()
    client.force_login(membership.user)
    assert client.post(reverse("practice_switch"), {"practice": "abc"}).status_code == 404
    assert client.get(reverse("practice_switch")).status_code == 405


def test_removed_membership_falls_back_to_another_practice(client):
    first = MembershipFactory(role=Role.USER, practice=PracticeFactory(name="Alpha"))
    second = MembershipFactory(
        user=first.user, role=Role.USER, practice=PracticeFactory(name="Beta")
    )
    client.force_login(first.user)
    client.post(reverse("practice_switch"), {"practice": second.practice_id})
    second.delete()
    assert client.get(reverse("home")).context["current_practice"] == first.practice


def test_member_of_b_gets_404_for_objects_of_a(member_client):
    """Practice A's membership and API key ids are 404 for an Administrator of practice B."""
    practice_a = PracticeFactory(name="A")
    a_member = MembershipFactory(practice=practice_a, role=Role.USER)
    a_key = api_key_create(practice=practice_a, name="EMR").api_key
    b_admin = member_client(Role.ADMINISTRATOR)

    urls = [
        reverse("settings_member_role", args=[a_member.pk]),
        reverse("settings_member_remove", args=[a_member.pk]),
        reverse("settings_api_key_revoke", args=[a_key.pk]),
    ]
    for url in urls:
        assert b_admin.post(url, {"role": Role.ADMINISTRATOR}).status_code == 404, url

    a_member.refresh_from_db()
    assert a_member.role == Role.USER
    assert Membership.objects.filter(pk=a_member.pk).exists()
    assert ApiKey.objects.get(pk=a_key.pk).revoked_at is None
