"""The client's network address, for throttling sign-ins and password resets.

Behind a TLS proxy (README, Production) every request arrives from the proxy's address. Each
proxy appends the address it was reached from to ``X-Forwarded-For``, so with
``TRUSTED_PROXY_COUNT`` = N proxies in front of the app the client is the Nth entry from the
right. Entries further left were written by the client and are never believed; a request that
did not pass through all N proxies (fewer entries), or an entry that is not an address, gives
the peer's own address (``REMOTE_ADDR``).
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def _address(entry: str) -> str | None:
    """``entry`` as a normalized IP address (a port, as some proxies add, dropped), or None."""
    entry = entry.strip()
    if entry.startswith("[") and "]" in entry:  # [2001:db8::1]:443
        entry = entry[1 : entry.index("]")]
    elif entry.count(":") == 1:  # 203.0.113.7:51234
        entry = entry.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(entry))
    except ValueError:
        return None


def client_address(request: HttpRequest | None) -> str:
    """The address of the client that sent ``request`` ("" without a request)."""
    if request is None:
        return ""
    peer = request.META.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    if len(forwarded) < proxies:
        return peer
    return _address(forwarded[-proxies]) or peer
