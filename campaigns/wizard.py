"""The "+ Add Campaign" wizard's draft, and a campaign described in staff's words.

The draft is the campaign JSON of DESIGN §5 being built, kept in the session: one per new
campaign and one per campaign being edited, per practice. Each step validates its own part and
saves it here; only step 5 validates the whole draft with ``CampaignSerializer`` and writes the
campaign through ``campaign_create`` / ``campaign_update`` (which audit). Nothing is written to
the database before that, so an abandoned wizard leaves no trace but a session entry.
"""

from __future__ import annotations

import copy

from campaigns.forms import LOOKUP_FILTERS, STATUS_CHOICES, TRIGGER_LABELS, WEEKDAY_LABELS
from campaigns.models import Campaign, CampaignKind
from campaigns.services import campaign_as_json
from campaigns.spec import DEFAULT_SCHEDULE, is_continuous

STEPS = [
    ("name", "Name"),
    ("audience", "Audience"),
    ("messages", "Messages"),
    ("goals", "Goals"),
    ("review", "Activate & Review"),
]
STEP_NAMES = [name for name, _ in STEPS]
DRAFT_FIELDS = [
    "name",
    "trigger",
    "filters",
    "schedule",
    "exclude_recent_days",
    "messages",
    "goal",
    "enabled",
]
# Which step a field of the campaign JSON (and so its validation error) belongs to.
STEP_OF_FIELD = {
    "name": "name",
    "trigger": "audience",
    "filters": "audience",
    "schedule": "audience",
    "exclude_recent_days": "audience",
    "messages": "messages",
    "goal": "goals",
}
SESSION_PREFIX = "campaign_draft"


def new_draft() -> dict:
    """What a new campaign starts from: most campaigns are for active patients, daily at 10."""
    return {
        "name": "",
        "trigger": {"type": "birthday", "offset_days": 0},
        "filters": {"status": "active"},
        "schedule": dict(DEFAULT_SCHEDULE),
        "exclude_recent_days": 0,
        "messages": [],
        "goal": None,
        "enabled": False,
    }


def draft_key(practice_id: int, campaign_id: int | None) -> str:
    return f"{SESSION_PREFIX}:{practice_id}:{campaign_id or 'new'}"


def _from_campaign(campaign: Campaign) -> dict:
    data = campaign_as_json(campaign)
    draft = {name: data[name] for name in DRAFT_FIELDS}
    draft["schedule"] = draft["schedule"] or dict(DEFAULT_SCHEDULE)
    # To warn at step 5 when someone else changed the campaign meanwhile.
    draft["base_updated_at"] = data["updated_at"]
    return draft


def draft_get(session, *, practice_id: int, campaign: Campaign | None = None) -> dict:
    """The draft in the session, else a new one (or the campaign as it is, for an edit).

    A copy: changes count only once saved with ``draft_save``.
    """
    stored = session.get(draft_key(practice_id, campaign.pk if campaign else None))
    if stored is not None:
        return copy.deepcopy(stored)
    return _from_campaign(campaign) if campaign else new_draft()


def draft_save(session, *, practice_id: int, campaign: Campaign | None = None, **parts) -> dict:
    """Merge ``parts`` (fields of the campaign JSON) into the draft and store it."""
    unknown = set(parts) - set(DRAFT_FIELDS)
    if unknown:
        raise ValueError(f"Not part of a draft: {sorted(unknown)}")
    draft = draft_get(session, practice_id=practice_id, campaign=campaign)
    draft.update(copy.deepcopy(parts))
    session[draft_key(practice_id, campaign.pk if campaign else None)] = draft
    return draft


def draft_discard(session, *, practice_id: int, campaign: Campaign | None = None) -> None:
    session.pop(draft_key(practice_id, campaign.pk if campaign else None), None)


def draft_campaign_data(draft: dict, *, enabled: bool) -> dict:
    """The draft as input for ``CampaignSerializer``."""
    data = {name: copy.deepcopy(draft.get(name)) for name in DRAFT_FIELDS}
    data.update(kind=CampaignKind.DRIP, enabled=enabled)
    return data


def errors_by_step(errors: dict) -> dict[str, dict]:
    """A serializer's errors grouped by the wizard step they belong to."""
    grouped: dict[str, dict] = {}
    for field, detail in errors.items():
        grouped.setdefault(STEP_OF_FIELD.get(field, "review"), {})[field] = detail
    return grouped


def stale(draft: dict, campaign: Campaign | None) -> bool:
    """Whether the campaign changed (elsewhere) since this edit began."""
    if campaign is None or not draft.get("base_updated_at"):
        return False
    return campaign.updated_at.isoformat() != draft["base_updated_at"]


# --- In staff's words --------------------------------------------------------------------------


def _days(n: int) -> str:
    return f"{n} day{'s' if n != 1 else ''}"


def _offset_words(offset: int, what: str) -> str:
    if offset == 0:
        return f"On {what}"
    return f"{_days(abs(offset))} {'before' if offset < 0 else 'after'} {what}"


def describe_trigger(trigger: dict | None) -> str:
    if not trigger:
        return "No trigger"
    kind = trigger.get("type")
    if kind == "birthday":
        text = _offset_words(trigger.get("offset_days", 0), "the patient's birthday")
    elif kind == "first_visit":
        days = trigger.get("days_after", 0)
        text = f"{_days(days)} after the first visit" if days else "On the day of the first visit"
    elif kind == "anniversary":
        text = _offset_words(trigger.get("offset_days", 0), "the first-visit anniversary")
        if trigger.get("years"):
            text += f" (years {', '.join(str(y) for y in trigger['years'])})"
    elif kind == "scheduled_appointment":
        if trigger.get("when") == "booked":
            text = "On the day an appointment is booked"
        elif trigger.get("days", 0) == 0:
            text = "On the day of an appointment"
        else:
            text = f"{_days(trigger['days'])} before an appointment"
    elif kind == "missed_appointment":
        text = f"{trigger.get('minutes_after')} minutes after a missed appointment"
    elif kind in ("last_visit_checked_in", "last_visit_scheduled"):
        what = "Last visit" if kind == "last_visit_checked_in" else "Last scheduled appointment"
        when = trigger.get("when")
        if when == "today":
            hours = trigger.get("hours_after", 0)
            text = f"{what} today, {hours} hour{'s' if hours != 1 else ''} after check-in"
        elif when == "yesterday":
            text = f"{what} yesterday"
        else:
            how = "at least" if trigger.get("match") == "at_least" else "exactly"
            text = f"{what} {how} {_days(trigger.get('days', 0))} ago"
    else:
        text = TRIGGER_LABELS.get(kind, str(kind))
    return text


def describe_schedule(schedule: dict | None, trigger: dict | None) -> str:
    schedule = schedule or DEFAULT_SCHEDULE
    time = schedule.get("time", "10:00")
    if trigger and is_continuous(trigger):
        return f"Checked every minute; later steps delayed by days go out at {time}"
    frequency = schedule.get("frequency")
    if frequency == "weekly":
        days = ", ".join(WEEKDAY_LABELS[d] for d in schedule.get("weekdays", []))
        return f"Weekly on {days} at {time}"
    if frequency == "monthly":
        return f"Monthly on day {schedule.get('day')} at {time}"
    return f"Every day at {time}"


def describe_later_steps(schedule: dict | None, trigger: dict | None) -> str:
    """When messages delayed by days or more go out (DESIGN §5.4): at the campaign's time on
    their day; a continuous trigger has no run time of its own, so its schedule's time (10:00
    unless set) is for these alone."""
    time = (schedule or DEFAULT_SCHEDULE).get("time", DEFAULT_SCHEDULE["time"])
    if trigger and is_continuous(trigger):
        return (
            f"Messages delayed by days or more go out at {time} on their day: this trigger is "
            "checked every minute, and the time of its schedule (step 2, 10:00 unless you set "
            "one) is for these messages."
        )
    return (
        f"Messages delayed by days or more go out at {time} on their day, when the campaign runs."
    )


def _names(values) -> str:
    return ", ".join(str(v) for v in values)


def _bounds(bounds: dict, fmt=str) -> str:
    if "eq" in bounds:
        return f"exactly {fmt(bounds['eq'])}"
    if "min" in bounds and "max" in bounds:
        return f"{fmt(bounds['min'])} to {fmt(bounds['max'])}"
    if "min" in bounds:
        return f"at least {fmt(bounds['min'])}"
    return f"at most {fmt(bounds.get('max'))}"


def _money(value) -> str:
    return f"${value:,.2f}".replace(".00", "")


def describe_filters(filters: dict | None, *, can_see_financials: bool = True) -> list[str]:
    """Every selected filter in one line each ("Show All Selected Filters")."""
    filters = filters or {}
    lines = []
    tags = filters.get("tags") or {}
    if tags.get("include"):
        lines.append(f"Has any of the tags: {_names(tags['include'])}")
    if tags.get("exclude"):
        lines.append(f"Has none of the tags: {_names(tags['exclude'])}")
    if filters.get("status"):
        lines.append(f"Status: {dict(STATUS_CHOICES).get(filters['status'], filters['status'])}")
    if "has_future_appointment" in filters:
        lines.append(
            f"Has a future appointment: {'yes' if filters['has_future_appointment'] else 'no'}"
        )
    for name, (_kind, label) in LOOKUP_FILTERS.items():
        value = filters.get(name)
        if not value:
            continue
        if name == "providers":
            of = "the patient's primary" if value.get("match") == "primary" else "an appointment's"
            lines.append(f"Providers ({of}): {_names(value['names'])}")
        else:
            lines.append(f"{label}: {_names(value)}")
    if filters.get("paid_total"):
        lines.append(
            f"Paid total: {_bounds(filters['paid_total'], _money)}"
            if can_see_financials
            else "Paid total: set (shown to Managers)"
        )
    if filters.get("age"):
        lines.append(f"Age: {_bounds(filters['age'])}")
    if filters.get("sex"):
        labels = {"M": "Male", "F": "Female", "X": "Other", "U": "Unknown"}
        lines.append(f"Sex: {_names(labels.get(s, s) for s in filters['sex'])}")
    address = filters.get("address") or {}
    for key, label in (("states", "States"), ("cities", "Cities"), ("postal_codes", "ZIP codes")):
        if address.get(key):
            lines.append(f"{label}: {_names(address[key])}")
    if filters.get("visit_count"):
        lines.append(f"Visit count: {_bounds(filters['visit_count'])}")
    return lines


def describe_goal(goal: dict | None) -> str:
    if not goal:
        return "No goal"
    if goal["type"] == "future_appointment":
        text = "Ends when the patient books a future appointment"
        parts = [
            f"{label}: {_names(goal['filters'][name])}"
            for name, label in (("appointment_purposes", "purposes"), ("providers", "providers"))
            if goal.get("filters", {}).get(name)
        ]
        return f"{text} ({'; '.join(parts)})" if parts else text
    text = "Ends when the patient clicks a link in a message"
    return f"{text} ({goal['url']})" if goal.get("url") else text


def describe_delay(delay: dict | None, position: int) -> str:
    if position == 1:
        return "Sent when the patient enters the campaign"
    delay = delay or {"value": 0, "unit": "days"}
    value, unit = delay.get("value", 0), delay.get("unit", "days")
    if value == 0:
        return "Right after the previous message"
    return f"{value} {unit[:-1] if value == 1 else unit} after the previous message"
