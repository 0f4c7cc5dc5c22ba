"""Provider credentials per practice (DESIGN §3, §7, §10): encrypted at rest, never shown back.

A practice's Administrator may give the practice its own Twilio account SID and auth token and
its own SendGrid API key. ``credentials_for(practice)`` answers the credentials to use, field
by field: the practice's own value when it has one, else the platform's environment setting
(``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN``, ``SENDGRID_API_KEY``).

Secrets are encrypted with Fernet under a key derived from ``SECRET_KEY`` (HKDF-SHA256), and
read with that key or one derived from any of ``SECRET_KEY_FALLBACKS``: to rotate, move the
old key to the fallbacks, set the new one, run ``manage.py rotate_credentials`` (which
re-encrypts every stored secret under the new key), then drop the fallback. A secret no key
can read counts as not set (the environment's value is used) and a warning naming only the
practice id is logged; its Administrator must enter it again.

No secret value ever appears in a log line, an exception message or an audit entry.
"""

from __future__ import annotations

import base64
import logging
import re
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from trackstat.audit import audit_record
from trackstat.models import Practice, ProviderCredentials, User

logger = logging.getLogger(__name__)

# The names ``provider_credentials_set`` accepts; the secrets among them are stored encrypted.
SECRET_FIELDS = ("twilio_auth_token", "sendgrid_api_key")
CREDENTIAL_FIELDS = ("twilio_account_sid", *SECRET_FIELDS)

TWILIO_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
SENDGRID_KEY_PREFIX = "SG."
HKDF_INFO = b"trackstat provider credentials v1"


@dataclass(frozen=True)
class Credentials:
    twilio_account_sid: str
    twilio_auth_token: str
    sendgrid_api_key: str

    def __repr__(self) -> str:  # never let a secret reach a log through a repr
        return f"Credentials(twilio_account_sid={self.twilio_account_sid!r}, secrets=<hidden>)"


# --- encryption ----------------------------------------------------------------------------


def _fernet_of(secret_key: str) -> Fernet:
    """Fernet keyed from one secret key (HKDF-SHA256 → 32 bytes → urlsafe base64)."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def _fernet() -> MultiFernet:
    """Encrypts under ``SECRET_KEY``'s key; decrypts with it or a ``SECRET_KEY_FALLBACKS``
    key (a rotation in progress)."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet_of(key) for key in keys])


def secret_encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode() if value else ""


def secret_decrypt(token: str) -> str | None:
    """The secret, "" when none is stored, or ``None`` when it cannot be decrypted (the
    ``SECRET_KEY`` changed since it was saved, and the old one is not a fallback)."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        return None


# --- reading -------------------------------------------------------------------------------


def _stored_secret(row: ProviderCredentials | None, field: str) -> str:
    if row is None:
        return ""
    value = secret_decrypt(getattr(row, f"{field}_encrypted"))
    if value is None:
        logger.warning(
            "provider credentials of practice %s: %s cannot be decrypted (SECRET_KEY rotated?"
            " its old key belongs in SECRET_KEY_FALLBACKS);"
            " using the environment's",
            row.practice_id,
            field,
        )
        return ""
    return value


def _credentials_row(practice: Practice) -> ProviderCredentials | None:
    return ProviderCredentials.objects.filter(practice=practice).first()


def credentials_for(practice: Practice | None) -> Credentials:
    """The credentials to use for ``practice``: each field the practice's own when set, else
    the environment's. ``practice=None`` gives the environment's."""
    row = _credentials_row(practice) if practice is not None else None
    return Credentials(
        twilio_account_sid=(row.twilio_account_sid if row else "") or settings.TWILIO_ACCOUNT_SID,
        twilio_auth_token=_stored_secret(row, "twilio_auth_token") or settings.TWILIO_AUTH_TOKEN,
        sendgrid_api_key=_stored_secret(row, "sendgrid_api_key") or settings.SENDGRID_API_KEY,
    )


def practice_credentials_status(practice: Practice) -> dict[str, bool]:
    """Which of the practice's own credentials are set (for the settings page): never the
    values of the secrets."""
    row = _credentials_row(practice)
    return {
        "twilio_account_sid": bool(row and row.twilio_account_sid),
        "twilio_auth_token": bool(row and row.twilio_auth_token_encrypted),
        "sendgrid_api_key": bool(row and row.sendgrid_api_key_encrypted),
    }


# --- changing ------------------------------------------------------------------------------


def _validate(changes: dict[str, str]) -> None:
    errors: dict[str, str] = {}
    sid = changes.get("twilio_account_sid")
    if sid and not TWILIO_ACCOUNT_SID.match(sid):
        errors["twilio_account_sid"] = (
            "Twilio account SID: enter \u201cAC\u201d followed by 32 hexadecimal characters."
        )
    token = changes.get("twilio_auth_token")
    if token and (len(token) > 200 or any(c.isspace() for c in token)):
        errors["twilio_auth_token"] = "Twilio auth token: paste the token without spaces."  # noqa: S105
    key = changes.get("sendgrid_api_key")
    if key and (not key.startswith(SENDGRID_KEY_PREFIX) or any(c.isspace() for c in key)):
        errors["sendgrid_api_key"] = (
            "SendGrid API key: a SendGrid key starts with \u201cSG.\u201d and has no spaces."
        )
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def provider_credentials_set(
    *, practice: Practice, actor: User | str, **changes: str
) -> ProviderCredentials:
    """Change the practice's own provider credentials (Administrators). Each keyword given
    (``twilio_account_sid``, ``twilio_auth_token``, ``sendgrid_api_key``) replaces the stored
    value; ``""`` removes it (the environment's then applies); a keyword left out keeps it.

    The change is audited with the SID's values but only "set" / "changed" / "cleared" for
    the secrets. Raises ``ValidationError`` naming the field, never quoting a secret."""
    unknown = set(changes) - set(CREDENTIAL_FIELDS)
    if unknown:
        raise ValidationError({name: "Not a provider credential." for name in sorted(unknown)})
    changes = {name: (value or "").strip() for name, value in changes.items()}
    _validate(changes)
    Practice.objects.select_for_update().filter(pk=practice.pk).first()  # serialize changes
    row, _ = ProviderCredentials.objects.get_or_create(practice=practice)
    before: dict[str, str] = {}
    after: dict[str, str] = {}

    sid = changes.get("twilio_account_sid")
    if sid is not None and sid != row.twilio_account_sid:
        before["twilio_account_sid"] = row.twilio_account_sid
        after["twilio_account_sid"] = sid
        row.twilio_account_sid = sid
    for field in SECRET_FIELDS:
        if field not in changes:
            continue
        value = changes[field]
        column = f"{field}_encrypted"
        stored = getattr(row, column)
        if not value:
            if stored:
                after[field] = "cleared"
                setattr(row, column, "")
            continue
        if stored and secret_decrypt(stored) == value:
            continue  # the same secret again: nothing changed
        after[field] = "changed" if stored else "set"
        setattr(row, column, secret_encrypt(value))

    if after:
        row.save()
        audit_record(
            practice=practice,
            actor=actor,
            action="practice.provider_credentials_update",
            target=row,
            before=before or None,
            after=after,
        )
    return row


def provider_credentials_reencrypt() -> tuple[int, list[tuple[int, str]]]:
    """Re-encrypt every stored secret under the current ``SECRET_KEY`` (after a rotation, with
    the old key in ``SECRET_KEY_FALLBACKS``); returns (practices re-encrypted, the (practice
    id, field) pairs no key can read, which are left as they are). Never reads out a
    secret."""
    fernet = _fernet()
    done: set[int] = set()
    unreadable: list[tuple[int, str]] = []
    with transaction.atomic(durable=True):
        for row in ProviderCredentials.objects.select_for_update().order_by("practice_id"):
            changed = []
            for field in SECRET_FIELDS:
                column = f"{field}_encrypted"
                token = getattr(row, column)
                if not token:
                    continue
                try:
                    setattr(row, column, fernet.rotate(token.encode()).decode())
                except InvalidToken:
                    unreadable.append((row.practice_id, field))
                    continue
                changed.append(column)
            if changed:
                row.save(update_fields=changed)
                done.add(row.practice_id)
    return len(done), unreadable
