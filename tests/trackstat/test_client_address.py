"""The client's address behind the README's TLS proxy (issue 13, item 19).

Behind a proxy every request comes from the proxy's address, so the per-address sign-in lock
would lock out everyone at once. With ``TRUSTED_PROXY_COUNT`` = N the client is the Nth
address from the right of ``X-Forwarded-For`` (each trusted proxy appends the address it was
reached from); anything left of it was written by the client and is never believed.
"""

from __future__ import annotations

import pytest
from django.test import RequestFactory, override_settings
from django.urls import reverse

from tests.factories import TEST_PASSWORD, MembershipFactory
from trackstat.client_address import client_address

PROXY = "10.0.0.1"


def request_from(remote: str, forwarded: str | None = None):
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **meta)


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        # No trusted proxy (the default): X-Forwarded-For is the client's own say-so.
        (0, "198.51.100.9", "203.0.113.7", "198.51.100.9"),
        (0, "198.51.100.9", None, "198.51.100.9"),
        # One proxy: the entry it appended, whatever the client put before it.
        (1, PROXY, "203.0.113.7", "203.0.113.7"),
        (1, PROXY, "6.6.6.6, 203.0.113.7", "203.0.113.7"),
        (1, PROXY, "6.6.6.6,203.0.113.7", "203.0.113.7"),
        (1, PROXY, "2001:db8::7", "2001:db8::7"),
        (1, PROXY, "203.0.113.7:51234", "203.0.113.7"),
        (1, PROXY, "[2001:db8::7]:443", "2001:db8::7"),
        # Two proxies (a load balancer, then the TLS proxy): the second from the right.
        (2, PROXY, "6.6.6.6, 203.0.113.7, 10.0.0.2", "203.0.113.7"),
        # Fewer entries than trusted proxies, none, or not an address: the peer's address.
        (2, PROXY, "203.0.113.7", PROXY),
        (1, PROXY, None, PROXY),
        (1, PROXY, "", PROXY),
        (1, PROXY, "6.6.6.6, not-an-address", PROXY),
    ],
)
def test_client_address(settings, proxies, remote, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    assert client_address(request_from(remote, forwarded)) == expected


def _fail_login(client, email: str, forwarded: str):
    return client.post(
        reverse("login"),
        {"username": email, "password": "wrong-password"},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=forwarded,
    )


@pytest.mark.django_db
@override_settings(TRUSTED_PROXY_COUNT=1, LOGIN_FAILURE_LIMIT=5)
def test_one_guesser_behind_the_proxy_does_not_lock_out_the_practice(client):
    colleague = MembershipFactory()
    # 20 failures (5 x the per-address factor of 4) from one client, on many accounts, each
    # with a different forged leftmost X-Forwarded-For entry.
    for n in range(20):
        _fail_login(client, f"guess{n}@example.test", f"1.1.1.{n}, 198.51.100.9")

    locked = client.post(
        reverse("login"),
        {"username": colleague.user.email, "password": TEST_PASSWORD},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="198.51.100.9",
    )
    assert locked.status_code == 429  # the guesser's own address is locked, forged entries or not

    signed_in = client.post(
        reverse("login"),
        {"username": colleague.user.email, "password": TEST_PASSWORD},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="203.0.113.7",
    )
    assert signed_in.status_code == 302  # everyone else behind the same proxy signs in
