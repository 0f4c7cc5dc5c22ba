"""A campaign in staff's words: its trigger, schedule, filters, goal and step delays, as the
wizard's summary, the blast page and the patient's "Why?" panel show them."""

from __future__ import annotations

from campaigns.language.filters import ADDRESS_PARTS, LOOKUP_FILTERS, SEX_LABELS, STATUS_CHOICES
from campaigns.language.spec import DEFAULT_SCHEDULE, WEEKDAY_LABELS
from campaigns.language.triggers import is_continuous, trigger_row


def describe_trigger(trigger: dict | None) -> str:
    """The trigger in staff's words ("3 days before the patient's birthday"), by its row of
    the trigger table."""
    if not trigger:
        return "No trigger"
    row = trigger_row(trigger)
    return row.describe(trigger) if row else str(trigger.get("type"))


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
    if filters.get("appointment_confirmations"):
        lines.append("Appointment confirmation: " + _names(filters["appointment_confirmations"]))
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
        lines.append(f"Sex: {_names(SEX_LABELS.get(s, s) for s in filters['sex'])}")
    address = filters.get("address") or {}
    for key, label in ADDRESS_PARTS.items():
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
    if goal["type"] == "confirmed":
        return "Ends when the patient confirms the appointment (by text, or the EMR says so)"
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
