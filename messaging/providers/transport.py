"""The HTTP connection both providers' requests go out on: urllib3, one pool per provider
object (a worker thread and an account: ``messaging.providers.provider_for``), with the proxy
and the CA bundle read from the environment once, when the provider is built.

The SDKs still decide what is sent: Twilio's client builds and signs every request and
reads every answer, through its ``HttpClient`` extension point (``twilio.TwilioTransport``);
SendGrid's ``Mail`` builds the body and its client the headers. Only the step that writes
the bytes to the socket is ours.

Why not ``requests``, which both SDKs use by default: it prepares every request anew
(merging the session's settings, cookies, hooks and the environment) on top of the same
urllib3 pool. Posting one message to the local fake provider took 0.84 ms of CPU through
a ``requests`` session and 0.49 ms straight through urllib3, for every message sent.

Errors are reduced to what the engine must know: ``NotSent`` when the request never went
out (refused, unresolvable, connect timeout: safe to send again) and ``NoAnswer`` when it
may have (read timeout, connection dropped, a TLS or proxy failure: reconcile, never resend
blindly). No retries and no redirects: a retried POST could send a message twice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from http.client import HTTPException
from urllib.parse import urlencode

import certifi
import urllib3
from requests.utils import get_environ_proxies, select_proxy
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ReadTimeoutError,
)


class TransportError(Exception):
    """A request that got no HTTP answer. ``code``: what happened, in the provider's terms
    for its ``ProviderError`` (no address, no patient data)."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


class NotSent(TransportError):
    """The request never went out: nothing can have been accepted."""


class NoAnswer(TransportError):
    """The request may have gone out, and no answer came back."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # case-insensitive (urllib3's ``HTTPHeaderDict``)
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def environment_settings(url: str) -> tuple[str | None, str]:
    """The proxy for ``url`` (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``, unless
    ``NO_PROXY`` names its host) and the CA bundle (``REQUESTS_CA_BUNDLE``,
    ``CURL_CA_BUNDLE``, else certifi's): what ``requests`` would take from the environment."""
    proxy = select_proxy(url, get_environ_proxies(url))
    bundle = (
        os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()
    )
    return proxy, bundle


class Transport:
    """Requests to one provider's host over kept-alive connections (``connections`` of them:
    as many as there are calls at once on one provider object)."""

    def __init__(self, base_url: str, *, timeout: float, connections: int = 1):
        self.proxy, bundle = environment_settings(base_url)
        options = {
            "timeout": urllib3.Timeout(connect=timeout, read=timeout),
            "retries": False,
            # Kept alive for the next request: one per call in flight at once.
            "maxsize": connections,
            "cert_reqs": "CERT_REQUIRED",
            **({"ca_cert_dir": bundle} if os.path.isdir(bundle) else {"ca_certs": bundle}),
        }
        if self.proxy:
            proxy = urllib3.util.parse_url(self.proxy)
            headers = urllib3.make_headers(proxy_basic_auth=proxy.auth) if proxy.auth else None
            self.manager: urllib3.PoolManager = urllib3.ProxyManager(
                self.proxy, proxy_headers=headers, **options
            )
        else:
            self.manager = urllib3.PoolManager(**options)

    def request(
        self, method: str, url: str, *, body: str | bytes | None, headers: dict[str, str]
    ) -> Answer:
        try:
            response = self.manager.urlopen(
                method, url, body=body, headers=headers, redirect=False, retries=False
            )
        except NewConnectionError:
            raise NotSent("connection_failed") from None
        except ConnectTimeoutError:
            raise NotSent("connect_timeout") from None
        except ReadTimeoutError:
            raise NoAnswer("read_timeout") from None
        except (HTTPError, HTTPException, OSError):
            raise NoAnswer("connection_dropped") from None
        return Answer(status=response.status, headers=response.headers, body=response.data)


def form_encoded(values: Mapping[str, object] | None) -> str:
    """``values`` as ``application/x-www-form-urlencoded`` (a list is one pair per item;
    ``None`` is left out), as ``requests`` encodes a dict."""
    pairs = []
    for key, value in (values or {}).items():
        for item in value if isinstance(value, list | tuple) else (value,):
            if item is not None:
                pairs.append((key, item))
    return urlencode(pairs)
