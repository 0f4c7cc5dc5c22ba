"""Where outbound webhooks may go (DESIGN §4.1.1): never into private or loopback ranges
unless ``WEBHOOK_ALLOW_PRIVATE_TARGETS`` is on (development and tests).

The host is resolved when the endpoint is saved (a clear 400) and again for every attempt;
the sender then connects to the very address that was checked (``webhook_send``), so a DNS
answer that changes between the check and the connection (rebinding) cannot reach inside.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError


class TargetRefused(Exception):
    """The URL cannot be delivered to; the message names no secret and no PHI."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written in the URL (for Host and TLS)
    port: int
    path: str  # path and query
    address: str  # the checked IP address to connect to


def _address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def webhook_target_resolve(url: str) -> Target:
    """The URL's parts and one address to connect to that is allowed; TargetRefused if none."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise TargetRefused("Use an http:// or https:// URL with a host name.")
    if parts.username or parts.password:
        raise TargetRefused("Leave user names and passwords out of the URL.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("The URL's port is not a number from 1 to 65535.") from None
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise TargetRefused("The URL's host name does not resolve.") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise TargetRefused("The URL's host name does not resolve.")
    # Every address must be public: a name answering one public and one private address
    # could otherwise be steered inside.
    if not settings.WEBHOOK_ALLOW_PRIVATE_TARGETS and not all(
        _address_allowed(a) for a in addresses
    ):
        raise TargetRefused(
            "The URL points to a private or loopback address; webhooks go to public addresses only."
        )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(
        scheme=parts.scheme, host=parts.hostname, port=port, path=path, address=addresses[0]
    )


def webhook_target_check(url: str, *, field: str) -> Target:
    """``webhook_target_resolve`` for input: a ValidationError naming ``field``."""
    if len(url) > 2000:
        raise ValidationError({field: ["Keep the URL under 2,000 characters."]})
    try:
        return webhook_target_resolve(url)
    except TargetRefused as refused:
        raise ValidationError({field: [str(refused)]}) from None
