"""Sending outbound webhooks (DESIGN §4.1.1): signed POSTs from the database, retried.

A delivery is due at ``next_attempt_at``. Until the receiver answers 2xx it is tried again at
+1, 5 and 15 minutes, then 1, 3, 6, 12 and 24 hours after it first fell due (so for 24 hours),
then marked failed; every attempt is a ``WebhookAttempt`` row, listed on the Administrators'
Webhooks page, which can resend. Rows are claimed with ``SELECT … FOR UPDATE SKIP LOCKED``,
so two runs at once never post the same attempt twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import time

import certifi
import urllib3
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from trackstat.credentials import secret_decrypt
from trackstat.events import event_json
from trackstat.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from trackstat.webhook_targets import Target, TargetRefused, webhook_target_resolve

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-TrackStat-Signature"
# After the n-th failed attempt the next one is due this long after the delivery fell due.
RETRY_OFFSETS = (
    dt.timedelta(minutes=1),
    dt.timedelta(minutes=5),
    dt.timedelta(minutes=15),
    dt.timedelta(hours=1),
    dt.timedelta(hours=3),
    dt.timedelta(hours=6),
    dt.timedelta(hours=12),
    dt.timedelta(hours=24),
)
BATCH_SIZE = 100


def signature_header(*, secret: str, body: bytes, timestamp: int) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body, keyed by the secret>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_body(event) -> bytes:
    return json.dumps(event_json(event), separators=(",", ":"), sort_keys=True).encode()


def _post(target: Target, *, body: bytes, headers: dict[str, str]) -> int:
    """POST to the checked address (never a fresh DNS answer), TLS verified against the URL's
    host name. Redirects are not followed. Answers the status code."""
    timeout = urllib3.Timeout(
        connect=settings.WEBHOOK_TIMEOUT_SECONDS, read=settings.WEBHOOK_TIMEOUT_SECONDS
    )
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            timeout=timeout,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(
            target.address, target.port, timeout=timeout, retries=False
        )
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Host": host_header},
            redirect=False,
            retries=False,
            preload_content=False,
        )
        response.read(65536, decode_content=False)
        response.release_conn()
        return response.status
    finally:
        pool.close()


def webhook_delivery_attempt(delivery: WebhookDelivery, *, now: dt.datetime) -> bool:
    """POST a (locked) delivery once, record the attempt and schedule the next one; answers
    whether it was delivered."""
    started = time.monotonic()
    status_code: int | None = None
    error = ""
    secret = secret_decrypt(delivery.endpoint.secret_encrypted)
    if not secret:
        error = "the webhook's secret cannot be read (SECRET_KEY changed); create it again"
    else:
        body = event_body(delivery.event)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "TrackStat-Webhooks/1",
            SIGNATURE_HEADER: signature_header(secret=secret, body=body, timestamp=timestamp),
        }
        try:
            target = webhook_target_resolve(delivery.endpoint.url)
            status_code = _post(target, body=body, headers=headers)
            if not 200 <= status_code < 300:
                error = f"answered {status_code}"
        except TargetRefused as refused:
            error = str(refused)[:200]
        except urllib3.exceptions.HTTPError as failure:
            error = f"could not deliver: {type(failure).__name__}"
    WebhookAttempt.objects.create(
        practice_id=delivery.practice_id,
        delivery=delivery,
        at=now,
        status_code=status_code,
        error=error[:200],
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    delivery.attempts += 1
    if not error:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
    elif delivery.attempts > len(RETRY_OFFSETS):
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
        logger.warning(
            "webhook delivery %s (practice %s) failed after %s attempts",
            delivery.pk,
            delivery.practice_id,
            delivery.attempts,
        )
    else:
        delivery.next_attempt_at = delivery.first_due_at + RETRY_OFFSETS[delivery.attempts - 1]
    delivery.save(update_fields=["status", "attempts", "delivered_at", "next_attempt_at"])
    return not error


def webhook_deliveries_send_due(*, now: dt.datetime | None = None, limit: int = 1000) -> dict:
    """Send every pending delivery due at ``now`` (at most ``limit``). Answers counts."""
    now = now or timezone.now()
    delivered = failed_attempts = 0
    tried: list[int] = []  # once per run: a failed attempt already due again waits for the next
    while delivered + failed_attempts < limit:
        with transaction.atomic():
            batch = list(
                WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
                .exclude(pk__in=tried)
                .select_related("endpoint", "event")
                .order_by("next_attempt_at", "pk")[: min(BATCH_SIZE, limit)]
            )
            if not batch:
                break
            for delivery in batch:
                tried.append(delivery.pk)
                if webhook_delivery_attempt(delivery, now=now):
                    delivered += 1
                else:
                    failed_attempts += 1
    return {"webhooks_delivered": delivered, "webhook_attempts_failed": failed_attempts}
