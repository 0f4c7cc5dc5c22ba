"""A campaign's purpose and its default (DESIGN §5.8).

Care is about the patient's own appointments and treatment (reminders, missed-appointment
follow-ups, post-visit check-ins); notice is practice operations (blasts by default);
everything else (birthdays, anniversaries, reactivation, promotions) is marketing. Staff may
change it; the engine applies the rules of the purpose the campaign has.
"""

from __future__ import annotations

from messaging.models import Purpose

CARE_TRIGGERS = {"scheduled_appointment", "missed_appointment"}
# A visit of today or yesterday: a post-visit check-in is care; "days ago" is reactivation.
CARE_VISIT_WHEN = {"today", "yesterday"}


def default_purpose(*, kind: str, trigger: dict | None) -> str:
    """The purpose a campaign has unless staff choose another."""
    if kind == "blast":
        return Purpose.NOTICE
    trigger = trigger or {}
    kind_of_trigger = trigger.get("type")
    if kind_of_trigger in CARE_TRIGGERS:
        return Purpose.CARE
    if kind_of_trigger == "last_visit_checked_in" and trigger.get("when") in CARE_VISIT_WHEN:
        return Purpose.CARE
    return Purpose.MARKETING
