"""A continuous campaign's audience statement, compiled once per local day (issue 20).

A continuous campaign is evaluated at every tick (``campaigns.engine.watermark``), and most of
a run's cost was the ORM compiling its audience query (``audience_candidates`` and
``new_occurrences_sql``): about 5 ms per campaign and tick, more than PostgreSQL's work for
the handful of patients a narrowed run looks at. Yet from one tick to the next only the
instant and the patients change. So the statement is compiled once per campaign, version and
local day into a *template*, and each tick fills in its instant and its patients.

Which parameters are the instant: the audience code derives every instant from its
``RunContext`` — ``ctx.at`` itself or ``ctx.before(delta)`` — and everything else from the
local date (``ctx.today``, ``ctx.day_start``), which is part of the template's key. The
template is compiled with a ``RunContext`` that records the instants it hands out; a
parameter that *is* one of them (the same object) is filled in at each tick as the tick's
instant plus the same offset, in UTC. A statement whose instants cannot all be traced that way
(the same object not found among the parameters) is not made a template: it is compiled at
each tick, as before. ``AUDIENCE_TEMPLATE_VERIFY`` (on in the tests) compiles every statement
directly as well and fails if the template's differs, so an instant derived some other way
shows at once.

The patients: one array parameter, NULL for all of them (a full evaluation). PostgreSQL sees
the values (Django binds them on the client), so the test is folded away either way.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import OrderedDict
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL

from campaigns.audience.query import audience_candidates, new_occurrences_sql
from campaigns.audience.triggers import RunContext
from campaigns.models import Campaign, CampaignKind

# Templates kept per process (least recently used dropped first): two continuous campaigns
# per practice of thousands of practices, a few kilobytes each.
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
    instants: tuple[tuple[int, dt.timedelta], ...]  # (position, offset from the tick)
    patients: tuple[int, ...]  # positions of the patients array

    def render(self, now: dt.datetime, patients: list[int] | None) -> tuple[str, list]:
        params = list(self.params)
        utc = now.astimezone(dt.UTC)
        for position, offset in self.instants:
            params[position] = utc + offset
        for position in self.patients:
            params[position] = patients
        return self.sql, params


_cache: OrderedDict[tuple, _Template | None] = OrderedDict()


def _narrowed(patients) -> Q:
    """``patients`` (a list of ids), or every patient when the list is None."""
    return Q(RawSQL("%s::bigint[] IS NULL", (patients,), output_field=BooleanField())) | Q(
        pk__in=RawSQL("SELECT unnest(%s::bigint[])", (patients,))
    )


def _compiled(campaign: Campaign, ctx: RunContext, patients) -> tuple[str, list]:
    candidates = audience_candidates(campaign, at=ctx.at, ctx=ctx).filter(_narrowed(patients))
    sql, params = new_occurrences_sql(campaign, candidates)
    return sql, list(params)


def _template(campaign: Campaign, now: dt.datetime) -> _Template | None:
    ctx = _TracingContext(practice=campaign.practice, at=now)
    marker = _Patients()
    sql, params = _compiled(campaign, ctx, marker)
    offsets = {id(now): dt.timedelta(0)} | {id(instant): offset for instant, offset in ctx.handed}
    instants, patients = [], []
    for position, value in enumerate(params):
        if value is marker:
            patients.append(position)
        elif isinstance(value, dt.datetime) and id(value) in offsets:
            instants.append((position, offsets[id(value)]))
    if not patients:
        return None
    # An instant the context handed out that reached the statement as another object (a copy)
    # would pass for a constant: a datetime parameter equal to one of them and not traced
    # makes the statement no template (compiled at each tick, as before).
    handed = {now.astimezone(dt.UTC)} | {instant.astimezone(dt.UTC) for instant, _ in ctx.handed}
    traced = {position for position, _ in instants}
    for position, value in enumerate(params):
        if (
            position not in traced
            and isinstance(value, dt.datetime)
            and value.tzinfo is not None
            and value.astimezone(dt.UTC) in handed
        ):
            return None
    return _Template(sql, tuple(params), tuple(instants), tuple(patients))


def _key(campaign: Campaign, now: dt.datetime) -> tuple:
    practice = campaign.practice
    return (
        campaign.pk,
        campaign.updated_at,
        campaign.enabled_at,
        practice.pk,
        practice.time_zone,
        now.astimezone(practice.tz).date(),
        json.dumps(
            [campaign.kind, campaign.trigger, campaign.filters, campaign.exclude_recent_days],
            sort_keys=True,
            default=str,
        ),
    )


def continuous_rows_sql(
    campaign: Campaign, now: dt.datetime, patients: list[int] | None
) -> tuple[str, list]:
    """``new_occurrences_sql`` of ``campaign``'s audience at ``now``, narrowed to ``patients``
    (None: all), from the campaign's template of the day (compiled on first use)."""
    if campaign.exclude_recent_days or campaign.kind != CampaignKind.DRIP:
        # Its exclusions derive their instants from ``at`` outside the context.
        return _compiled(campaign, RunContext(practice=campaign.practice, at=now), patients)
    key = _key(campaign, now)
    if key in _cache:
        _cache.move_to_end(key)
        template = _cache[key]
    else:
        template = _cache[key] = _template(campaign, now)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    if template is None:
        return _compiled(campaign, RunContext(practice=campaign.practice, at=now), patients)
    sql, params = template.render(now, patients)
    if settings.AUDIENCE_TEMPLATE_VERIFY:
        direct = _compiled(campaign, RunContext(practice=campaign.practice, at=now), patients)
        if (sql, _comparable(params)) != (direct[0], _comparable(direct[1])):
            raise AssertionError(f"campaign {campaign.pk}: its audience template drifted")
    return sql, params


def _comparable(params: list) -> list:
    return [p.astimezone(dt.UTC) if isinstance(p, dt.datetime) else p for p in params]


def cache_clear() -> None:
    _cache.clear()
