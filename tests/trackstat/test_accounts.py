"""Sign-in, sign-out, password rules, password reset and failed-login throttling."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.urls import reverse

from tests.factories import TEST_PASSWORD, MembershipFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db


def test_login_page_renders(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert 'name="username"' in response.text


def test_login_with_email_and_logout(client):
    membership = MembershipFactory()
    response = client.post(
        reverse("login"), {"username": membership.user.email.upper(), "password": TEST_PASSWORD}
    )
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200
    client.post(reverse("logout"))
    assert client.get(reverse("home")).status_code == 302


def test_wrong_password_is_refused(client):
    membership = MembershipFactory()
    response = client.post(
        reverse("login"), {"username": membership.user.email, "password": "wrong-password"}
    )
    assert response.status_code == 200
    assert "Please enter a correct" in response.text


@override_settings(LOGIN_FAILURE_LIMIT=3)
def test_repeated_failures_lock_the_account_even_for_the_right_password(client):
    membership = MembershipFactory()
    for _ in range(3):
        client.post(reverse("login"), {"username": membership.user.email, "password": "bad-guess"})
    response = client.post(
        reverse("login"), {"username": membership.user.email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.text
    assert client.get(reverse("home")).status_code == 302  # still signed out


@override_settings(LOGIN_FAILURE_LIMIT=3)
def test_throttle_is_per_email_and_a_success_resets_it(client):
    locked = MembershipFactory()
    other = MembershipFactory()
    client.post(reverse("login"), {"username": locked.user.email, "password": "bad"})
    client.post(reverse("login"), {"username": locked.user.email, "password": "bad"})
    ok = client.post(reverse("login"), {"username": locked.user.email, "password": TEST_PASSWORD})
    assert ok.status_code == 302  # two failures are under the limit; success clears them
    client.post(reverse("logout"))
    for _ in range(2):
        client.post(reverse("login"), {"username": locked.user.email, "password": "bad"})
    assert (
        client.post(
            reverse("login"), {"username": locked.user.email, "password": TEST_PASSWORD}
        ).status_code
        == 302
    )
    client.post(reverse("logout"))
    assert (
        client.post(
            reverse("login"), {"username": other.user.email, "password": TEST_PASSWORD}
        ).status_code
        == 302
    )


@override_settings(LOGIN_FAILURE_LIMIT=2)
def test_one_address_guessing_many_accounts_is_locked(client):
    target = MembershipFactory()
    for n in range(8):  # 2 x the per-address factor of 4
        client.post(reverse("login"), {"username": f"guess{n}@example.test", "password": "bad"})
    response = client.post(
        reverse("login"), {"username": target.user.email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 429


def test_passwords_need_at_least_ten_characters():
    with pytest.raises(ValidationError, match="at least 10 characters"):
        validate_password("Sh0rt-pw!")
    validate_password("long-enough-pass")


def test_password_reset_by_email(client):
    membership = MembershipFactory()
    response = client.post(reverse("password_reset"), {"email": membership.user.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    path = re.search(r"https?://[^/]+(/accounts/password-reset/\S+)", mail.outbox[0].body).group(1)
    form_url = client.get(path, follow=True).redirect_chain[-1][0]
    response = client.post(form_url, {"new_password1": "short", "new_password2": "short"})
    assert response.status_code == 200
    assert "at least 10 characters" in response.text
    client.post(form_url, {"new_password1": "brand-new-pass", "new_password2": "brand-new-pass"})
    assert client.login(username=membership.user.email, password="brand-new-pass")


def test_password_reset_for_unknown_email_says_the_same(client):
    response = client.post(reverse("password_reset"), {"email": "nobody@example.test"})
    assert response.status_code == 302
    assert len(mail.outbox) == 0


def test_profile_sets_my_name_and_mobile_phone(member_client):
    client = member_client(Role.USER)
    response = client.post(
        reverse("profile"), {"first_name": "Ann", "last_name": "Lee", "phone": "(312) 555-0142"}
    )
    assert response.status_code == 302
    user = client.membership.user
    user.refresh_from_db()
    assert (user.first_name, user.phone) == ("Ann", "+13125550142")
    response = client.post(reverse("profile"), {"first_name": "A", "last_name": "", "phone": "12"})
    assert response.status_code == 400
    assert "Enter a valid phone number." in response.text
    user.refresh_from_db()
    assert user.phone == "+13125550142"


def test_profile_needs_a_login(client):
    assert client.get(reverse("profile")).status_code == 302


# --- password reset throttling (issue 13, item 18) ------------------------------------------


def _reset(client, email: str, *, address: str = "198.51.100.9", forwarded: str | None = None):
    extra = {"REMOTE_ADDR": address}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return client.post(reverse("password_reset"), {"email": email}, **extra)


@override_settings(PASSWORD_RESET_LIMIT=3)
def test_password_reset_is_throttled_per_email_whoever_asks(client):
    membership = MembershipFactory()
    responses = [_reset(client, membership.user.email, address=f"203.0.113.{n}") for n in range(15)]

    assert len(mail.outbox) == 3
    # Throttled or not, the answer is the same: it never tells what happened.
    assert {(r.status_code, r["Location"]) for r in responses} == {
        (302, reverse("password_reset_done"))
    }


@override_settings(PASSWORD_RESET_LIMIT=3)
def test_password_reset_is_throttled_per_client_address(client):
    members = [MembershipFactory() for _ in range(15)]
    for membership in members:
        _reset(client, membership.user.email)

    assert len(mail.outbox) == 12  # 3 x the per-address factor of 4
    _reset(client, members[-1].user.email, address="203.0.113.5")
    assert len(mail.outbox) == 13  # another client is not held up by that one


@override_settings(PASSWORD_RESET_LIMIT=3, TRUSTED_PROXY_COUNT=1)
def test_password_reset_counts_the_client_behind_the_proxy(client):
    members = [MembershipFactory() for _ in range(13)]
    for membership in members[:12]:
        _reset(client, membership.user.email, address="10.0.0.1", forwarded="198.51.100.9")
    _reset(client, members[12].user.email, address="10.0.0.1", forwarded="6.6.6.6, 198.51.100.9")
    assert len(mail.outbox) == 12  # a forged leftmost entry is still the same client

    _reset(client, members[12].user.email, address="10.0.0.1", forwarded="203.0.113.7")
    assert len(mail.outbox) == 13


@override_settings(PASSWORD_RESET_LIMIT=1)
def test_a_throttled_reset_looks_like_one_for_an_unknown_email(client):
    membership = MembershipFactory()
    _reset(client, membership.user.email)
    throttled = _reset(client, membership.user.email)
    unknown = _reset(client, "nobody@example.test", address="203.0.113.5")

    assert len(mail.outbox) == 1
    assert (throttled.status_code, throttled["Location"]) == (
        unknown.status_code,
        unknown["Location"],
    )
    done = client.get(throttled["Location"])
    assert done.status_code == 200
    assert "Too many" not in done.text
