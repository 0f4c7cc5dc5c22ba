"""What storage can hold: the input rules every path shares (REST records, CSV, FHIR, campaign
JSON, query parameters, forms).

Each rule is a plain function that takes what a client sent and returns the clean value or
raises ``InvalidValue`` with a message that names the problem and never repeats the value
(which may be a patient's data). Callers put the message under the field's name: a record
error, a DRF ``ValidationError``, a form error.

The ranges, and why:

- Text: PostgreSQL text cannot hold a NUL character, and UTF-8 cannot encode a lone UTF-16
  surrogate (``"\\ud800"`` is valid JSON); either would fail the write as a server error. A
  column's length is read from the model field (``max_length_of``), so limits never drift.
- Dates (birth, first visit, report ranges): 1900-01-01 to 2100-12-31, written
  ``YYYY-MM-DD`` only (not ISO week or ordinal forms). Nobody alive was born before 1900, so an
  older date is a typo (0019 for 2019); 2100 is far beyond any booking, and every date stays
  far from the limits of Python's date and PostgreSQL's after the engine's day arithmetic
  (triggers count up to ten years) and time-zone conversion.
- Instants (appointment start, check-in, booking, a blast's ``send_at``, ``?at=``): the same
  years, with an explicit UTC offset within ±14:00 (the widest real ones are -12:00 and
  +14:00). Python accepts offsets up to ±23:59, and ``9999-12-31T23:59:59-12:00`` cannot be
  converted to UTC at all.
- Integers are JSON integers (or, from CSV and query strings, decimal digits): ``15.0`` is not
  accepted where a whole number is meant.
- JSON bodies nest at most ``MAX_JSON_DEPTH`` levels (a FHIR bundle needs about ten).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.db import models

MAX_JSON_DEPTH = 32
EARLIEST_DATE = dt.date(1900, 1, 1)
LATEST_DATE = dt.date(2100, 12, 31)
MAX_UTC_OFFSET = dt.timedelta(hours=14)

NUL_MESSAGE = "Null characters are not allowed."
SURROGATE_MESSAGE = "Contains a character that is not valid Unicode (a lone surrogate)."
DATE_FORMAT_MESSAGE = "Date has wrong format. Use YYYY-MM-DD."
DATETIME_FORMAT_MESSAGE = (
    "Datetime has wrong format. Use ISO 8601 with an offset, e.g. 2026-03-09T09:30:00-05:00."
)
NAIVE_MESSAGE = "Give an offset, for example 2026-03-09T09:30:00-05:00."
OFFSET_MESSAGE = "The UTC offset must be between -14:00 and +14:00."
INTEGER_MESSAGE = "A valid integer is required."

DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Calendar date, time to the minute or finer, and an offset: the extended form clients write
# (``T`` or a space between date and time; ``Z`` or ``±HH:MM`` / ``±HHMM``).
DATETIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
    r"([Zz]|[+-][0-9]{2}:?[0-9]{2})?"
)
INTEGER_RE = re.compile(r"[+-]?[0-9]+")


class InvalidValue(ValueError):
    """A value storage cannot hold; the message names the rule, never the value."""


# --- text ------------------------------------------------------------------------------------


def max_length_of(model: type[models.Model], field_name: str) -> int:
    """The ``max_length`` of a model's text field: input limits follow the columns."""
    return model._meta.get_field(field_name).max_length


def text_problem(value: str) -> str | None:
    """Why PostgreSQL cannot store this text (a NUL, a lone surrogate), or None."""
    if "\x00" in value:
        return NUL_MESSAGE
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE_MESSAGE
    return None


def check_text(value: str, *, max_length: int | None = None) -> str:
    """``value`` if storage can hold it (and it fits ``max_length``), else InvalidValue."""
    problem = text_problem(value)
    if problem:
        raise InvalidValue(problem)
    if max_length is not None and len(value) > max_length:
        raise InvalidValue(f"Ensure this field has no more than {max_length} characters.")
    return value


def storable_text(value: str) -> str:
    """Text that must be kept whatever it holds (an inbound SMS), made storable: NUL
    characters dropped, lone surrogates replaced by U+FFFD."""
    if text_problem(value) is None:
        return value
    return "".join(
        "\ufffd" if "\ud800" <= char <= "\udfff" else char for char in value if char != "\x00"
    )


def parse_external_id(value: Any, *, max_length: int = 64) -> str:
    """An EMR id as sent in a body, a path or a query string: surrounding whitespace is
    trimmed (on write and on read alike, so ``" P1 "`` is ``P1`` everywhere)."""
    if value is None:
        raise InvalidValue("This field may not be null.")
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidValue("Not a valid string.")
    value = check_text(str(value).strip(), max_length=max_length)
    if not value:
        raise InvalidValue("This field may not be blank.")
    return value


# --- numbers ---------------------------------------------------------------------------------


def parse_int(value: Any, *, minimum: int, maximum: int, strings: bool = True) -> int:
    """A whole number in [minimum, maximum]: a JSON integer, or (``strings``) its decimal
    digits as CSV cells and query strings carry them; never a float such as ``15.0``."""
    if isinstance(value, bool):
        raise InvalidValue(INTEGER_MESSAGE)
    if isinstance(value, str) and strings and INTEGER_RE.fullmatch(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise InvalidValue(INTEGER_MESSAGE)
    if not minimum <= value <= maximum:
        raise InvalidValue(f"Ensure this value is between {minimum} and {maximum}.")
    return value


# --- dates and instants ----------------------------------------------------------------------


def _range_message(earliest: dt.date, latest: dt.date) -> str:
    return f"Must be between {earliest.isoformat()} and {latest.isoformat()}."


def parse_date(
    value: Any, *, earliest: dt.date = EARLIEST_DATE, latest: dt.date = LATEST_DATE
) -> dt.date:
    """A calendar date written ``YYYY-MM-DD``, within [earliest, latest]."""
    if isinstance(value, dt.datetime) or not isinstance(value, str | dt.date):
        raise InvalidValue(DATE_FORMAT_MESSAGE)
    if isinstance(value, str):
        if not DATE_RE.fullmatch(value):
            raise InvalidValue(DATE_FORMAT_MESSAGE)
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            raise InvalidValue(DATE_FORMAT_MESSAGE) from None
    if not earliest <= value <= latest:
        raise InvalidValue(_range_message(earliest, latest))
    return value


def check_instant(value: dt.datetime) -> dt.datetime:
    """An aware datetime within the sane years and offsets (see the module docstring)."""
    offset = value.utcoffset()
    if offset is None:
        raise InvalidValue(NAIVE_MESSAGE)
    if abs(offset) > MAX_UTC_OFFSET:
        raise InvalidValue(OFFSET_MESSAGE)
    # The local date first: converting year 9999 to UTC could overflow.
    if not EARLIEST_DATE <= value.date() <= LATEST_DATE:
        raise InvalidValue(_range_message(EARLIEST_DATE, LATEST_DATE))
    if not EARLIEST_DATE <= value.astimezone(dt.UTC).date() <= LATEST_DATE:
        raise InvalidValue(_range_message(EARLIEST_DATE, LATEST_DATE))
    return value


def parse_instant(value: Any) -> dt.datetime:
    """An instant: ISO 8601 with a UTC offset (an aware datetime is accepted as it is)."""
    if isinstance(value, dt.datetime):
        return check_instant(value)
    if not isinstance(value, str) or not DATETIME_RE.fullmatch(value.strip()):
        raise InvalidValue(DATETIME_FORMAT_MESSAGE)
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidValue(DATETIME_FORMAT_MESSAGE) from None
    return check_instant(parsed)


# --- JSON ------------------------------------------------------------------------------------


def json_too_deep(data: Any, *, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether parsed JSON nests lists and objects more than ``max_depth`` levels."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def storable_json(data: Any) -> Any:
    """Parsed JSON with every string (keys too) made storable (``storable_text``): for
    echoing what a client sent in an error answer."""
    if isinstance(data, str):
        return storable_text(data)
    if isinstance(data, dict):
        return {storable_json(k): storable_json(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [storable_json(item) for item in data]
    return data
