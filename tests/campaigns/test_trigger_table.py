"""The trigger table is the one home of the trigger vocabulary: the validation, the wizard's
trigger form, the engine's continuity, explain and the words for staff all read its rows, so
every row works everywhere."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from campaigns.forms.audience import TriggerForm
from campaigns.language.describe import describe_trigger
from campaigns.language.triggers import (
    APPOINTMENT_TRIGGERS,
    TRIGGERS,
    continuous_of,
    default_trigger,
    is_continuous,
    validate_trigger,
)
from campaigns.models import Campaign
from campaigns.selectors import explain
from tests.factories import PatientFactory


def _every_trigger_the_wizard_starts_from() -> list[dict]:
    """Each type with each of its ``when`` values, filled with the values the wizard starts
    from (the common uses of DESIGN §5.1)."""
    triggers = []
    for row in TRIGGERS.values():
        for mode in row.modes or [None]:
            trigger = {"type": row.name}
            if mode is not None:
                trigger["when"] = mode.name
            for param in row.params_for(trigger.get("when")):
                if param.name in row.starts_with:
                    trigger[param.name] = row.starts_with[param.name]
                elif param.required:
                    trigger[param.name] = param.choices[0] if param.choices else param.low
            triggers.append(trigger)
    return triggers


EVERY_TRIGGER = _every_trigger_the_wizard_starts_from()


def test_the_table_holds_the_seven_trigger_types_of_the_design_in_the_wizards_order():
    assert list(TRIGGERS) == [
        "birthday",
        "first_visit",
        "anniversary",
        "last_visit_checked_in",
        "last_visit_scheduled",
        "missed_appointment",
        "scheduled_appointment",
    ]
    assert default_trigger() == {"type": "birthday", "offset_days": 0}
    appointment_keyed = {
        "scheduled_appointment",
        "missed_appointment",
        "last_visit_checked_in",
        "last_visit_scheduled",
    }
    assert appointment_keyed == APPOINTMENT_TRIGGERS
    assert {name for name, row in TRIGGERS.items() if row.per_case} == {
        "last_visit_checked_in",
        "last_visit_scheduled",
    }


@pytest.mark.parametrize("trigger", EVERY_TRIGGER, ids=lambda t: f"{t['type']}-{t.get('when')}")
def test_every_type_and_when_validates_and_has_its_own_words(trigger):
    assert validate_trigger(trigger) == trigger
    words = describe_trigger(trigger)
    assert words
    assert words != trigger["type"]


@pytest.mark.parametrize("trigger", EVERY_TRIGGER, ids=lambda t: f"{t['type']}-{t.get('when')}")
def test_the_wizard_form_asks_for_every_parameter_of_every_type_and_when(trigger):
    """Posting the form filled as the table says gives back the same trigger."""
    data = {"trigger-type": trigger["type"]}
    for name, value in TriggerForm.initial_from(trigger).items():
        if name != "type" and value is not None:
            data[f"trigger-{name}"] = value
    form = TriggerForm(data, prefix="trigger")

    assert form.is_valid(), form.errors
    assert form.trigger == trigger
    assert dict(form.fields["type"].choices) == {n: r.label for n, r in TRIGGERS.items()}
    row = TRIGGERS[trigger["type"]]
    if len(row.modes) > 1:
        assert form.fields["when"].choices == [(m.name, m.label) for m in row.modes]
    for param in row.params_for(trigger.get("when")):
        if param.label:
            assert form.fields[param.name].label == param.label
    assert form.continuous is is_continuous(trigger)


def test_only_missed_appointments_and_todays_visits_are_continuous():
    continuous = [t for t in EVERY_TRIGGER if is_continuous(t)]

    assert continuous == [
        {"type": "last_visit_checked_in", "when": "today", "hours_after": 2},
        {"type": "missed_appointment", "minutes_after": 30},
    ]
    assert continuous_of(continuous[0]).delay_of(continuous[0]) == dt.timedelta(hours=2)
    assert continuous_of(continuous[1]).delay_of(continuous[1]) == dt.timedelta(minutes=30)
    assert not is_continuous({})
    assert not is_continuous(None)


@pytest.mark.django_db
@pytest.mark.parametrize("trigger", EVERY_TRIGGER, ids=lambda t: f"{t['type']}-{t.get('when')}")
def test_explain_says_what_the_patients_own_data_shows_for_every_type(trigger):
    patient = PatientFactory(birth_date=None, first_visit_date=None)
    campaign = Campaign.objects.create(
        practice=patient.practice, name="Any", trigger=trigger, filters={}
    )

    verdict = explain(campaign, patient, at=timezone.now())

    [check] = [c for c in verdict["checks"] if c["check"] == f"trigger: {trigger['type']}"]
    assert check["passed"] is False
    assert check["detail"].startswith("No ")
