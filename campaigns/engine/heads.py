"""The campaigns a tick looks at, as ``Head``s: a few columns each, not the model.

Every tick (idle ones too) asks of every enabled campaign of every practice whether it is
due, thousands of them. Reading and decoding them all at every tick (their trigger and
schedule are JSON) was about 40 ms of an idle tick. On PostgreSQL a process keeps the heads
it decoded and, at each tick, reads only each campaign's row version: a campaign's head is
read again only when its row or its practice's row changed since (every ``UPDATE`` writes a
new row version: another ``xmin`` and ``ctid``), or when it is new.
A campaign disabled, deleted, sent (a blast) or left without steps is no longer in the
first query, so it is no longer a head. SQLite reads every head at every tick.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import zoneinfo
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from django.db import connection
from django.db.models import Exists, OuterRef, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from campaigns.language.triggers import is_continuous
from campaigns.models import Campaign, CampaignKind, MessageStep
from trackstat.models import Practice


@dataclass(frozen=True)
class Head:
    """What deciding whether a campaign is due needs."""

    pk: int
    kind: str
    trigger: dict
    schedule: dict
    enabled_at: dt.datetime | None
    practice_id: int
    tz: zoneinfo.ZoneInfo
    updated_at: dt.datetime | None = None
    exclude_recent_days: int = 0
    # Evaluated at every tick (a drip with a continuous trigger): decided once per head, since
    # a tick asks it of every campaign several times.
    continuous: bool = False


# The heads decoded by this process (PostgreSQL), per database: campaign id → (campaign row
# version, practice row version, head). Entries of campaigns that are no longer heads are
# dropped when the practice's campaigns are read again.
_cache: dict[tuple, dict[int, tuple[str, str, Head]]] = {}
_lock = threading.Lock()
# A row version: the transaction that wrote it and where it lies. Each UPDATE writes a new
# version elsewhere, so two updates in one transaction differ too (the place of a dead
# version is reused only once no transaction can see it, by a later transaction).
_VERSION = "{0}.xmin::text || '/' || {0}.ctid::text"


def campaign_heads(practice_ids: Collection[int] | None = None) -> list[Head]:
    """Every enabled campaign with at least one step (blasts not yet sent), in id order.
    ``practice_ids``: only these practices' campaigns; None: every practice's."""
    if connection.vendor != "postgresql":
        return _heads_read(_candidates(practice_ids))
    versions = _versions(practice_ids)
    database = _database_key()
    with _lock:
        cached = _cache.setdefault(database, {})
        stale = [
            pk
            for pk, campaign_version, practice_version in versions
            if (entry := cached.get(pk)) is None
            or entry[:2] != (campaign_version, practice_version)
        ]
    fresh = {}
    if stale:
        for version, head in _heads_with_versions(stale):
            fresh[head.pk] = (*version, head)
    with _lock:
        cached.update(fresh)
        current = {pk for pk, _, _ in versions}
        gone = [
            pk
            for pk, (_, _, head) in cached.items()
            if pk not in current and (practice_ids is None or head.practice_id in practice_ids)
        ]
        for pk in gone:
            del cached[pk]
        # A campaign changed between the two reads is in ``fresh`` at its newer version (so
        # read again at the next tick); one no longer a head at the second read is left out.
        return [entry[2] for pk, _, _ in versions if (entry := cached.get(pk)) is not None]


def heads_forget() -> None:
    """Drop every head this process keeps (tests that rewrite rows under the same versions)."""
    with _lock:
        _cache.clear()


def _database_key() -> tuple:
    settings = connection.settings_dict
    return (settings.get("HOST"), settings.get("PORT"), settings.get("NAME"))


def _candidates(practice_ids: Collection[int] | None):
    has_steps = Exists(MessageStep.objects.filter(campaign_id=OuterRef("pk")))
    campaigns = Campaign.objects.filter(has_steps, enabled=True, sent_at__isnull=True)
    if practice_ids is not None:
        campaigns = campaigns.filter(practice_id__any=practice_ids)
    return campaigns


def _versions(practice_ids: Collection[int] | None) -> list[tuple[int, str, str]]:
    """(campaign id, campaign row version, practice row version) of every head, in id order."""
    campaigns = Campaign._meta.db_table
    practices = Practice._meta.db_table
    steps = MessageStep._meta.db_table
    only = "AND c.practice_id = ANY(%s)" if practice_ids is not None else ""
    sql = f"""
        SELECT c.id, {_VERSION.format("c")}, {_VERSION.format("p")}
        FROM {campaigns} c JOIN {practices} p ON p.id = c.practice_id
        WHERE c.enabled AND c.sent_at IS NULL
            AND EXISTS (SELECT 1 FROM {steps} s WHERE s.campaign_id = c.id)
            {only}
        ORDER BY c.id
    """  # noqa: S608 - table names from the models, values as parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(practice_ids)] if practice_ids is not None else [])
        return cursor.fetchall()


def _heads_with_versions(pks: list[int]) -> Iterable[tuple[tuple[str, str], Head]]:
    campaigns = Campaign._meta.db_table
    practices = Practice._meta.db_table
    candidates = (
        _candidates(None)
        .filter(pk__any=pks)
        .annotate(
            campaign_version=RawSQL(_VERSION.format(campaigns), []),  # noqa: S611 - constant
            practice_version=RawSQL(  # noqa: S611 - constant
                f"SELECT {_VERSION.format('p')} FROM {practices} p "  # noqa: S608 - table names
                f"WHERE p.id = {campaigns}.practice_id",
                [],
            ),
        )
    )
    return _heads_read(candidates, versions=True)


def _heads_read(campaigns, *, versions: bool = False) -> list:
    # The JSON columns as text, each distinct text decoded once: campaigns made from the same
    # template share their trigger and schedule. The decoded values are shared between heads
    # and only ever read.
    decoded: dict[str | None, dict] = {}
    zones: dict[str, zoneinfo.ZoneInfo] = {}

    def value(text: str | None) -> dict:
        if text not in decoded:
            decoded[text] = (json.loads(text) if text is not None else None) or {}
        return decoded[text]

    fields = [
        "pk",
        "kind",
        "trigger_text",
        "schedule_text",
        "enabled_at",
        "practice_id",
        "practice__time_zone",
        "updated_at",
        "exclude_recent_days",
    ]
    if versions:
        fields += ["campaign_version", "practice_version"]
    rows = (
        campaigns.annotate(
            trigger_text=Cast("trigger", TextField()),
            schedule_text=Cast("schedule", TextField()),
        )
        .order_by("id")
        .values_list(*fields)
    )
    heads = []
    for pk, kind, trigger_text, schedule_text, enabled_at, practice_id, zone, *rest in rows:
        updated_at, exclude_recent_days, *version = rest
        trigger = value(trigger_text)
        head = Head(
            pk=pk,
            kind=kind,
            trigger=trigger,
            schedule=value(schedule_text),
            enabled_at=enabled_at,
            practice_id=practice_id,
            tz=zones.setdefault(zone, zoneinfo.ZoneInfo(zone)),
            updated_at=updated_at,
            exclude_recent_days=exclude_recent_days or 0,
            continuous=kind != CampaignKind.BLAST and is_continuous(trigger),
        )
        heads.append((tuple(version), head) if versions else head)
    return heads
