"""The trigger table (DESIGN §5.1): one row per trigger type.

Everything that speaks of triggers reads its row here: validation (``validate_trigger``, for
the API and the wizard alike), the wizard's trigger form (labels, the ``when`` choices, the
values it starts from), the engine (continuous or on the schedule, and which event of today a
continuous trigger waits for), the audience queries (about an appointment or not, per case or
not, what an occurrence is), explain (what the patient's own data says) and the campaign in
staff's words (``describe``).

A new trigger type is one row here plus one compile branch in
``campaigns.audience.triggers.trigger_audience``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from rest_framework import serializers

from campaigns.language.checks import no_unknown, one_of, required, whole_number

UNKNOWN_PARAMETER = "Unknown parameter for this trigger."
MISSED_MINUTES = [15, 20, 25, 30, 60, 120]


@dataclass(frozen=True)
class Param:
    """A parameter of a trigger: a whole number from ``low`` to ``high``, or one of
    ``choices``; ``many`` names the items of a non-empty list of them instead.

    Absent, it takes ``default``; without a default it is required, unless ``optional``
    (then it is left out). ``label`` and ``help`` are the wizard's words for it.
    """

    name: str
    low: int = 0
    high: int = 0
    choices: tuple = ()
    default: int | None = None
    optional: bool = False
    many: str = ""
    label: str = ""
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is None and not self.optional

    def clean(self, data: dict):
        """The parameter's value in ``data`` (present when required), checked."""
        if self.optional:
            value = data.get(self.name)
            if value is None:
                return None
        else:
            value = data.get(self.name, self.default)
        if self.many:
            if not isinstance(value, list) or not value:
                raise serializers.ValidationError({self.name: [f"Give at least one: {self.many}."]})
            return sorted({whole_number(item, self.name, self.low, self.high) for item in value})
        if self.choices:
            # A whole-number choice is a JSON integer: not 15.0, not true.
            if isinstance(self.choices[0], int) and type(value) is not int:
                one_of(None, self.name, self.choices)
            return one_of(value, self.name, self.choices)
        return whole_number(value, self.name, self.low, self.high)


@dataclass(frozen=True)
class Continuous:
    """A trigger evaluated at every tick (not on the campaign's schedule): its ``event``
    (``missed``: an appointment not kept; ``visit``: a visit checked in) happened today, at
    least the parameter ``delay`` (in ``unit``) ago. Enabling such a campaign never reaches
    back into past days."""

    event: str
    delay: str
    unit: str

    def delay_of(self, trigger: dict) -> dt.timedelta:
        return dt.timedelta(**{self.unit: trigger.get(self.delay, 0)})


@dataclass(frozen=True)
class Mode:
    """One value of a trigger's ``when``, with the parameters it takes. A parameter of
    another mode given with this one is refused with ``unused``."""

    name: str
    label: str
    params: tuple[Param, ...] = ()
    continuous: Continuous | None = None
    unused: str = UNKNOWN_PARAMETER


@dataclass(frozen=True)
class TriggerType:
    """A trigger type.

    ``occurrence`` is what may enter a campaign once, ever: ``year``, ``once``,
    ``appointment`` or ``appointment_start`` (the appointment at its start: a moved
    appointment is reminded again). ``per_case``: evaluated per case (the ``case_types``
    filter narrows the cases). ``evidence``: what explain shows of the patient's own data.
    ``starts_with``: the values the wizard shows when staff choose the type.
    """

    name: str
    label: str
    occurrence: str
    evidence: str
    describe: Callable[[dict], str]
    params: tuple[Param, ...] = ()
    modes: tuple[Mode, ...] = ()
    continuous: Continuous | None = None
    per_case: bool = False
    starts_with: dict = field(default_factory=dict)

    @property
    def has_appointment(self) -> bool:
        """About an appointment: the enrollment keeps it, the purpose and provider filters
        narrow it, and its messages may use ``{{AppointmentDate}}``."""
        return self.occurrence in ("appointment", "appointment_start")

    def mode(self, when) -> Mode | None:
        return next((mode for mode in self.modes if mode.name == when), None)

    def params_for(self, when) -> tuple[Param, ...]:
        """The parameters taken with this ``when`` (besides ``type`` and ``when``)."""
        mode = self.mode(when)
        return self.params + (mode.params if mode else ())

    def continuous_for(self, when) -> Continuous | None:
        mode = self.mode(when)
        return self.continuous or (mode.continuous if mode else None)


# --- In staff's words --------------------------------------------------------------------------


def _days(n: int) -> str:
    return f"{n} day{'s' if n != 1 else ''}"


def _offset_words(offset: int, what: str) -> str:
    if offset == 0:
        return f"On {what}"
    return f"{_days(abs(offset))} {'before' if offset < 0 else 'after'} {what}"


def _birthday_words(trigger: dict) -> str:
    return _offset_words(trigger.get("offset_days", 0), "the patient's birthday")


def _first_visit_words(trigger: dict) -> str:
    days = trigger.get("days_after", 0)
    return f"{_days(days)} after the first visit" if days else "On the day of the first visit"


def _anniversary_words(trigger: dict) -> str:
    text = _offset_words(trigger.get("offset_days", 0), "the first-visit anniversary")
    if trigger.get("years"):
        text += f" (years {', '.join(str(y) for y in trigger['years'])})"
    return text


def _scheduled_words(trigger: dict) -> str:
    if trigger.get("when") == "booked":
        return "On the day an appointment is booked"
    if trigger.get("days", 0) == 0:
        return "On the day of an appointment"
    return f"{_days(trigger['days'])} before an appointment"


def _missed_words(trigger: dict) -> str:
    return f"{trigger.get('minutes_after')} minutes after a missed appointment"


def _last_words(what: str) -> Callable[[dict], str]:
    def words(trigger: dict) -> str:
        when = trigger.get("when")
        if when == "today":
            hours = trigger.get("hours_after", 0)
            return f"{what} today, {hours} hour{'s' if hours != 1 else ''} after check-in"
        if when == "yesterday":
            return f"{what} yesterday"
        how = "at least" if trigger.get("match") == "at_least" else "exactly"
        return f"{what} {how} {_days(trigger.get('days', 0))} ago"

    return words


# --- The table ---------------------------------------------------------------------------------

OFFSET_DAYS = Param("offset_days", -60, 60, default=0)
DAYS_AGO = (
    Param("days", 1, 3650, label="Days since"),
    Param("match", choices=("exact", "at_least"), label="Match"),
)
DAYS_AGO_MODE = Mode("days_ago", "Some days ago", DAYS_AGO)

TRIGGERS: dict[str, TriggerType] = {
    row.name: row
    for row in [
        TriggerType(
            "birthday",
            "Birthday",
            occurrence="year",
            evidence="birth_date",
            describe=_birthday_words,
            params=(OFFSET_DAYS,),
            starts_with={"offset_days": 0},
        ),
        TriggerType(
            "first_visit",
            "First visit (new patient)",
            occurrence="once",
            evidence="first_visit",
            describe=_first_visit_words,
            params=(
                Param(
                    "days_after",
                    0,
                    3650,
                    default=0,
                    label="Days after the first visit",
                    help="0 = the day of the first visit.",
                ),
            ),
            starts_with={"days_after": 0},
        ),
        TriggerType(
            "anniversary",
            "First-visit anniversary",
            occurrence="year",
            evidence="first_visit",
            describe=_anniversary_words,
            params=(
                OFFSET_DAYS,
                Param(
                    "years",
                    1,
                    100,
                    optional=True,
                    many="whole years",
                    label="Only these anniversaries (years)",
                    help="For example 1, 5, 10. Empty: every year.",
                ),
            ),
            starts_with={"offset_days": 0},
        ),
        TriggerType(
            "last_visit_checked_in",
            "Last visit (checked in)",
            occurrence="appointment",
            evidence="last_visit",
            describe=_last_words("Last visit"),
            per_case=True,
            modes=(
                Mode(
                    "today",
                    "Today, some hours after check-in",
                    (Param("hours_after", 0, 23, default=0, label="Hours after check-in"),),
                    continuous=Continuous("visit", "hours_after", "hours"),
                ),
                Mode("yesterday", "Yesterday", unused="Not used with when: yesterday."),
                DAYS_AGO_MODE,
            ),
            starts_with={"when": "days_ago", "days": 180, "match": "at_least", "hours_after": 2},
        ),
        TriggerType(
            "last_visit_scheduled",
            "Last scheduled appointment",
            occurrence="appointment",
            evidence="last_scheduled",
            describe=_last_words("Last scheduled appointment"),
            per_case=True,
            modes=(DAYS_AGO_MODE,),
            starts_with={"days": 30, "match": "at_least"},
        ),
        TriggerType(
            "missed_appointment",
            "Missed appointment",
            occurrence="appointment",
            evidence="appointments_near",
            describe=_missed_words,
            params=(
                Param(
                    "minutes_after",
                    choices=tuple(MISSED_MINUTES),
                    label="Minutes after the appointment's start",
                ),
            ),
            continuous=Continuous("missed", "minutes_after", "minutes"),
            starts_with={"minutes_after": 30},
        ),
        TriggerType(
            "scheduled_appointment",
            "Scheduled appointment (booked or coming up)",
            occurrence="appointment_start",
            evidence="appointments_near",
            describe=_scheduled_words,
            modes=(
                Mode(
                    "days_before",
                    "Days before the appointment",
                    (
                        Param(
                            "days",
                            0,
                            365,
                            label="Days before the appointment",
                            help="0 = the day of the appointment.",
                        ),
                    ),
                ),
                Mode("booked", "The day it is booked", unused="Only with when: days_before."),
            ),
            starts_with={"when": "days_before", "days": 1},
        ),
    ]
}
TRIGGER_TYPES = list(TRIGGERS)
APPOINTMENT_TRIGGERS = {name for name, row in TRIGGERS.items() if row.has_appointment}


def default_trigger() -> dict:
    """What a new campaign's trigger starts as: the table's first type, as the wizard shows it."""
    first = next(iter(TRIGGERS.values()))
    return {"type": first.name, **first.starts_with}


def trigger_row(trigger: dict | None) -> TriggerType | None:
    return TRIGGERS.get((trigger or {}).get("type"))


def continuous_of(trigger: dict | None) -> Continuous | None:
    """How a continuous trigger runs (None for one on the campaign's schedule)."""
    row = trigger_row(trigger)
    return row.continuous_for(trigger.get("when")) if row else None


def is_continuous(trigger: dict | None) -> bool:
    """Evaluated at every tick rather than on the campaign's schedule."""
    return continuous_of(trigger) is not None


def validate_trigger(data) -> dict:
    """One trigger of §5.1 with exactly its parameters; defaults filled in."""
    if not isinstance(data, dict):
        raise serializers.ValidationError("Expected an object with a type.")
    required(data, "type")
    row = TRIGGERS[one_of(data["type"], "type", TRIGGER_TYPES)]
    every = {p.name for p in row.params} | {p.name for m in row.modes for p in m.params}
    no_unknown(data, {"type", *every, *(["when"] if row.modes else [])}, UNKNOWN_PARAMETER)
    clean: dict = {"type": row.name}
    if row.modes:
        required(data, "when")
        mode = row.mode(one_of(data["when"], "when", [m.name for m in row.modes]))
        clean["when"] = mode.name
        params = row.params + mode.params
        no_unknown(data, {"type", "when", *(p.name for p in params)}, mode.unused)
    else:
        params = row.params
    required(data, *(p.name for p in params if p.required))
    for param in params:
        value = param.clean(data)
        if value is not None:
            clean[param.name] = value
    return clean
