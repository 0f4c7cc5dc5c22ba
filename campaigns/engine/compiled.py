"""A drip's audience statement, compiled once per shape and local day (issue 20).

Most of a campaign run's cost was the ORM building its audience query (``audience_candidates``
then ``new_occurrences_sql``): 5 to 6 ms per campaign, more than PostgreSQL's work for a
narrowed continuous run, and paid again by every practice's copy of the same campaign. Yet
the statement depends only on the campaign's *shape* — kind, trigger and filters — and on the
practice's time zone and local date; the practice, the campaign, the instant and the patients
are values in it. So it is compiled once per shape, time zone and local day into a
*template*, and each run fills those four in.

- **Practice and campaign.** The template is compiled for a stand-in practice and campaign
  whose ids are sentinels no row has (negative); a parameter equal to a sentinel is filled in
  with the run's id. A sentinel found in the statement's text, or inside a list parameter,
  makes it no template.
- **The instant.** The audience code derives every instant from its ``RunContext`` —
  ``ctx.at`` itself or ``ctx.before(delta)`` — and everything else from the local date
  (``ctx.today``, ``ctx.day_start``), which is part of the key. The template is compiled with
  a context that records the instants it hands out; a parameter that *is* one of them (the
  same object) is filled in as the run's instant plus the same offset, in UTC. A datetime
  parameter equal to one of them but not the same object (a copy) makes it no template.
- **The patients.** One array parameter, NULL for all of them. PostgreSQL sees the values
  (Django binds them on the client), so the test is folded away either way; a narrowed run
  (a short list) runs the same text as a prepared statement (``campaigns.engine.prepared``).
- **Many campaigns at once.** ``narrowed_rows_sql`` gives the template with the practice, the
  campaign and the patients as columns of an outer row (``_Template.lateral``): the narrowed
  runs of one shape are then one statement (``campaigns.engine.enroll:_shape_enroll``).

A statement that is no template is compiled at each run, as before; so are blasts. A campaign
with ``exclude_recent_days`` has a template (its window's start is an instant of the context,
and the number of days part of the shape) but always runs on its own, never in a statement
shared with other campaigns: it reads the enrollments the runs before it made.
``AUDIENCE_TEMPLATE_VERIFY`` (on in the tests) compiles every statement directly as well and
fails if the template's differs, so every engine test on PostgreSQL checks them.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL

from campaigns.audience.query import audience_candidates, new_occurrences_sql
from campaigns.audience.triggers import RunContext
from campaigns.models import Campaign, CampaignKind
from trackstat.models import Practice

# Templates kept per process (least recently used dropped first): a few kilobytes each, one
# per campaign shape, time zone and local day.
CACHE_SIZE = 4096


@dataclass(frozen=True)
class _TracingContext(RunContext):
    """A ``RunContext`` that records every instant it hands out, with its offset from ``at``."""

    handed: list = field(default_factory=list, compare=False)

    def before(self, delta: dt.timedelta) -> dt.datetime:
        instant = super().before(delta)
        self.handed.append((instant, -delta))
        return instant


class _Patients(list):
    """The patients parameter's placeholder: a list object of its own, found by identity."""


@dataclass(frozen=True)
class _Template:
    sql: str
    params: tuple
    instants: tuple[tuple[int, dt.timedelta], ...]  # (position, offset from the run's instant)
    patients: tuple[int, ...]  # positions of the patients array
    practices: tuple[int, ...]  # positions of the practice's id
    campaigns: tuple[int, ...]  # positions of the campaign's id

    def render(
        self, campaign: Campaign, now: dt.datetime, patients: list[int] | None
    ) -> tuple[str, list]:
        params = list(self.params)
        utc = now.astimezone(dt.UTC)
        for position, offset in self.instants:
            params[position] = utc + offset
        for position in self.patients:
            params[position] = patients
        for position in self.practices:
            params[position] = campaign.practice_id
        for position in self.campaigns:
            params[position] = campaign.pk
        return self.sql, params

    def lateral(self, now: dt.datetime) -> tuple[str, list] | None:
        """The statement for many campaigns of this shape at once: the practice, the campaign
        and the patients as the columns ``v.practice_id``, ``v.campaign_id`` and
        ``v.patients`` of an outer row (so it is a ``LATERAL`` subquery), the instants filled
        in. None when a placeholder is not where a template puts it."""
        parts = self.sql.split("%s")
        if "%%" in self.sql or len(parts) != len(self.params) + 1:
            return None
        columns = dict.fromkeys(self.practices, "v.practice_id") | dict.fromkeys(
            self.campaigns, "v.campaign_id"
        )
        for position in self.patients:
            following = parts[position + 1]
            if following.startswith("::bigint[] IS NULL"):
                columns[position] = "'{}'"  # a list, never "every patient": the test folds
            elif following.startswith("::bigint[])"):
                columns[position] = "v.patients"
            else:
                return None
        sql = [parts[0]]
        params = []
        utc = now.astimezone(dt.UTC)
        instants = dict(self.instants)
        for position, value in enumerate(self.params):
            if position in columns:
                sql.append(columns[position])
            else:
                sql.append("%s")
                params.append(utc + instants[position] if position in instants else value)
            sql.append(parts[position + 1])
        return "".join(sql), params


_cache: OrderedDict[tuple, _Template | None] = OrderedDict()
_lock = threading.Lock()
_MISSING = object()

# Ids no row has: the stand-in practice and campaign a template is compiled for.
PRACTICE_SENTINEL = -7_100_000_000_000_001
CAMPAIGN_SENTINEL = -7_100_000_000_000_002


def _narrowed(patients) -> Q:
    """``patients`` (a list of ids), or every patient when the list is None."""
    return Q(RawSQL("%s::bigint[] IS NULL", (patients,), output_field=BooleanField())) | Q(
        pk__in=RawSQL("SELECT unnest(%s::bigint[])", (patients,))
    )


def _compiled(campaign: Campaign, ctx: RunContext, patients) -> tuple[str, list]:
    candidates = audience_candidates(campaign, at=ctx.at, ctx=ctx).filter(_narrowed(patients))
    sql, params = new_occurrences_sql(campaign, candidates)
    return sql, list(params)


def _stand_in(campaign: Campaign) -> Campaign:
    """The campaign's shape, for a practice and campaign no row is (their ids the sentinels)."""
    practice = Practice(pk=PRACTICE_SENTINEL, time_zone=campaign.practice.time_zone)
    return Campaign(
        pk=CAMPAIGN_SENTINEL,
        practice=practice,
        kind=campaign.kind,
        trigger=campaign.trigger,
        filters=campaign.filters,
        exclude_recent_days=campaign.exclude_recent_days,
    )


def _template(campaign: Campaign, now: dt.datetime) -> _Template | None:
    stand_in = _stand_in(campaign)
    ctx = _TracingContext(practice=stand_in.practice, at=now)
    marker = _Patients()
    sql, params = _compiled(stand_in, ctx, marker)
    offsets = {id(now): dt.timedelta(0)} | {id(instant): offset for instant, offset in ctx.handed}
    handed = {now.astimezone(dt.UTC)} | {instant.astimezone(dt.UTC) for instant, _ in ctx.handed}
    sentinels = {PRACTICE_SENTINEL: "practice", CAMPAIGN_SENTINEL: "campaign"}
    if any(str(-sentinel) in sql for sentinel in sentinels):
        return None  # an id written into the statement's text
    slots: dict[str, list] = {"practice": [], "campaign": [], "patients": [], "instants": []}
    for position, value in enumerate(params):
        if value is marker:
            slots["patients"].append(position)
        elif isinstance(value, int) and not isinstance(value, bool) and value in sentinels:
            slots[sentinels[value]].append(position)
        elif isinstance(value, dt.datetime) and id(value) in offsets:
            slots["instants"].append((position, offsets[id(value)]))
        elif isinstance(value, dt.datetime) and value.tzinfo and value.astimezone(dt.UTC) in handed:
            return None  # an instant that reached the statement as a copy: not traceable
        elif isinstance(value, list | tuple | set) and any(v in sentinels for v in value):
            return None  # an id inside a list
    if not slots["patients"]:
        return None
    return _Template(
        sql,
        tuple(params),
        instants=tuple(slots["instants"]),
        patients=tuple(slots["patients"]),
        practices=tuple(slots["practice"]),
        campaigns=tuple(slots["campaign"]),
    )


def template_key(campaign: Campaign, now: dt.datetime) -> tuple:
    """What a template is kept by: the practice's zone and local day, and the shape (with
    ``exclude_recent_days``, whose window is an offset of the template's instants)."""
    practice = campaign.practice
    return (
        practice.time_zone,
        now.astimezone(practice.tz).date(),
        json.dumps(
            [campaign.kind, campaign.trigger, campaign.filters, campaign.exclude_recent_days],
            sort_keys=True,
        ),
    )


def audience_rows_sql(
    campaign: Campaign, now: dt.datetime, patients: list[int] | None
) -> tuple[str, list]:
    """``new_occurrences_sql`` of ``campaign``'s audience at ``now``, narrowed to ``patients``
    (None: all), from the template of its shape for the day (compiled on first use)."""
    if campaign.kind != CampaignKind.DRIP:
        return _compiled(campaign, RunContext(practice=campaign.practice, at=now), patients)
    template = _template_of(campaign, now)
    if template is None:
        return _compiled(campaign, RunContext(practice=campaign.practice, at=now), patients)
    sql, params = template.render(campaign, now, patients)
    if settings.AUDIENCE_TEMPLATE_VERIFY:
        direct = _compiled(campaign, RunContext(practice=campaign.practice, at=now), patients)
        if (sql, _comparable(params)) != (direct[0], _comparable(direct[1])):
            raise AssertionError(f"campaign {campaign.pk}: its audience template drifted")
    return sql, params


def narrowed_rows_sql(campaign: Campaign, now: dt.datetime) -> tuple[str, list] | None:
    """The rows statement of ``campaign``'s shape at ``now`` for all narrowed campaigns of
    that shape at once (``_Template.lateral``); None when its runs cannot share one (no
    template: each then runs on its own). With ``AUDIENCE_TEMPLATE_VERIFY`` the template is
    checked against a direct compilation first, as for a run of its own."""
    if (
        connection.vendor != "postgresql"
        # Its audience reads the enrollments the runs before it made: never one of many.
        or campaign.exclude_recent_days
        or campaign.kind != CampaignKind.DRIP
    ):
        return None
    template = _template_of(campaign, now)
    if template is None:
        return None
    if settings.AUDIENCE_TEMPLATE_VERIFY:
        audience_rows_sql(campaign, now, [])
    return template.lateral(now)


def _template_of(campaign: Campaign, now: dt.datetime) -> _Template | None:
    """The template of ``campaign``'s shape for its local day (compiled on first use)."""
    key = template_key(campaign, now)
    with _lock:  # ticks may run in threads of one process (the tests do)
        template = _cache.get(key, _MISSING)
        if template is not _MISSING:
            _cache.move_to_end(key)
    if template is _MISSING:
        template = _template(campaign, now)
        with _lock:
            _cache[key] = template
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return template


def _comparable(params: list) -> list:
    return [p.astimezone(dt.UTC) if isinstance(p, dt.datetime) else p for p in params]


def cache_clear() -> None:
    with _lock:
        _cache.clear()
