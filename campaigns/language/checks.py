"""The value checks the campaign JSON is validated with. Each raises a DRF ``ValidationError``
whose detail names the field: ``{"days": ["Must be between 1 and 3650."]}``."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from patients.models import Lookup
from trackstat.validators import InvalidValue, check_text, max_length_of

LOOKUP_NAME_LENGTH = max_length_of(Lookup, "name")


# How a range's bounds are named in messages staff read.
WORDS = {"min": "lowest", "max": "highest"}


def whole_number(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise serializers.ValidationError({name: ["A whole number is required."]})
    if not low <= value <= high:
        raise serializers.ValidationError({name: [f"Must be between {low} and {high}."]})
    return value


def one_of(value, name: str, choices) -> str:
    if value not in choices:
        raise serializers.ValidationError(
            {name: [f"Must be one of: {', '.join(str(c) for c in choices)}."]}
        )
    return value


def no_unknown(data: dict, allowed: set[str], message: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise serializers.ValidationError({name: [message] for name in unknown})


def required(data: dict, *names: str) -> None:
    missing = [name for name in names if name not in data]
    if missing:
        raise serializers.ValidationError({name: ["This field is required."] for name in missing})


def name_list(value, name: str, *, max_length: int = LOOKUP_NAME_LENGTH) -> list[str]:
    """Names as the EMR sent them (providers, tags, cities, …), as long as they can be."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise serializers.ValidationError({name: ["A list of names."]})
    try:
        names = [check_text(v.strip(), max_length=max_length) for v in value]
    except InvalidValue as error:
        raise serializers.ValidationError({name: [str(error)]}) from None
    return list(dict.fromkeys(names))


def number_range(value, name: str, low: float, high: float, *, decimals: bool = False) -> dict:
    """``{"min": …, "max": …}`` (either may be left out) within ``low`` and ``high``. A message
    about one bound carries it as its code (``min`` or ``max``), so a form shows it under that
    bound's input; the API shows only the text."""
    if not isinstance(value, dict) or not value or set(value) - {"min", "max"}:
        raise serializers.ValidationError({name: ["An object with min and/or max."]})
    clean = {}
    for bound in ("min", "max"):
        if bound in value and value[bound] is not None:
            number = value[bound]
            ok_types = (int, float) if decimals else (int,)
            if isinstance(number, bool) or not isinstance(number, ok_types):
                raise serializers.ValidationError(
                    {name: [ErrorDetail(f"The {WORDS[bound]} must be a number.", code=bound)]}
                )
            if not low <= number <= high:
                text = f"The {WORDS[bound]} must be from {low:,} to {high:,}."
                raise serializers.ValidationError({name: [ErrorDetail(text, code=bound)]})
            clean[bound] = number
    if "min" in clean and "max" in clean and clean["min"] > clean["max"]:
        text = f"The lowest ({clean['min']}) is above the highest ({clean['max']})."
        raise serializers.ValidationError({name: [ErrorDetail(text, code="min")]})
    return clean
