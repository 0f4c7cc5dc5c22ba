"""Throttling of failed sign-ins, per email address and per client address.

Counts live in Django's cache (Redis in production, a database table in development), so the
limit holds across web processes.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache

# One client address may try several accounts (an office behind one NAT): allow it more.
ADDRESS_LIMIT_FACTOR = 4


def _keys(email: str, address: str) -> tuple[str, str]:
    email_digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    address_digest = hashlib.sha256(address.encode()).hexdigest()[:32]
    return f"login-fail:email:{email_digest}", f"login-fail:addr:{address_digest}"


def login_is_locked(*, email: str, address: str) -> bool:
    email_key, address_key = _keys(email, address)
    limit = settings.LOGIN_FAILURE_LIMIT
    counts = cache.get_many([email_key, address_key])
    return (
        counts.get(email_key, 0) >= limit
        or counts.get(address_key, 0) >= limit * ADDRESS_LIMIT_FACTOR
    )


def login_failure_record(*, email: str, address: str) -> None:
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    for key in _keys(email, address):
        # add() starts the window on the first failure; incr() keeps its expiry.
        cache.add(key, 0, timeout=window)
        try:
            cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.set(key, 1, timeout=window)


def login_success_record(*, email: str, address: str) -> None:
    email_key, _ = _keys(email, address)
    cache.delete(email_key)
