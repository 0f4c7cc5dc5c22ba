"""Throttling of failed sign-ins and of password-reset requests, per email address and per
client address (``trackstat.client_address``, through the trusted proxies).

Counts live in Django's cache (Redis in production, a database table in development), so the
limit holds across web processes. Keys are digests: no email address or IP address is stored.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache

# One client address may try several accounts (an office behind one NAT): allow it more.
ADDRESS_LIMIT_FACTOR = 4


def _keys(scope: str, email: str, address: str) -> tuple[str, str]:
    email_digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    address_digest = hashlib.sha256(address.encode()).hexdigest()[:32]
    return f"{scope}:email:{email_digest}", f"{scope}:addr:{address_digest}"


def _increment(key: str, window: int) -> int:
    """Count one more event in ``key``'s window; the new count."""
    # add() starts the window on the first event; incr() keeps its expiry.
    cache.add(key, 0, timeout=window)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add() and incr()
        cache.set(key, 1, timeout=window)
        return 1


def login_is_locked(*, email: str, address: str) -> bool:
    email_key, address_key = _keys("login-fail", email, address)
    limit = settings.LOGIN_FAILURE_LIMIT
    counts = cache.get_many([email_key, address_key])
    return (
        counts.get(email_key, 0) >= limit
        or counts.get(address_key, 0) >= limit * ADDRESS_LIMIT_FACTOR
    )


def login_failure_record(*, email: str, address: str) -> None:
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    for key in _keys("login-fail", email, address):
        _increment(key, window)


def login_success_record(*, email: str, address: str) -> None:
    email_key, _ = _keys("login-fail", email, address)
    cache.delete(email_key)


def password_reset_allowed(*, email: str, address: str) -> bool:
    """Count one password-reset request for ``email`` from ``address``; whether a reset email
    may be sent for it (at most ``PASSWORD_RESET_LIMIT`` per email, and that many times the
    address factor per client address, within the window). Every request counts, whether the
    email belongs to an account or not, so the limit says nothing about which do."""
    window = settings.PASSWORD_RESET_WINDOW_SECONDS
    limit = settings.PASSWORD_RESET_LIMIT
    email_key, address_key = _keys("reset", email, address)
    email_count = _increment(email_key, window)
    address_count = _increment(address_key, window)
    return email_count <= limit and address_count <= limit * ADDRESS_LIMIT_FACTOR
