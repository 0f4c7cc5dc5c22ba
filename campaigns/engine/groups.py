"""Tick groups: beat's tick fans out into one task per group of practices (issue 20).

A practice belongs to group ``practice_id % TICK_GROUPS``: the same group in every process,
on every run and after every release (no Python ``hash()``, whose seed changes per process),
and sequential ids spread evenly over the groups. The four phases of a tick only touch rows
of one practice at a time (every engine table carries ``practice_id``; the locks are per
enrollment, message, campaign address or practice allowance), so groups run on different
workers side by side without sharing anything but the heartbeat.
"""

from __future__ import annotations

from django.conf import settings

from trackstat.models import Practice


def tick_groups() -> int:
    """How many groups beat's tick fans out into (``TICK_GROUPS``, at least 1)."""
    return max(1, settings.TICK_GROUPS)


def practice_group(practice_id: int, *, groups: int | None = None) -> int:
    """The group of a practice: its id modulo the number of groups."""
    return practice_id % (groups or tick_groups())


def group_practice_ids(group: int, *, groups: int | None = None) -> list[int]:
    """The ids of the practices in ``group`` (one query, ids only)."""
    groups = groups or tick_groups()
    if not 0 <= group < groups:
        raise ValueError(f"group: {group} is not in 0…{groups - 1}.")
    return [
        pk
        for pk in Practice.objects.order_by("pk").values_list("pk", flat=True)
        if practice_group(pk, groups=groups) == group
    ]
