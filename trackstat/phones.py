"""Phone numbers: any common US form or E.164 in, E.164 out (validated with phonenumbers)."""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "US"


def phone_to_e164(value: str) -> str:
    """``value`` as E.164; ValueError (without echoing the number) if it is not valid."""
    try:
        number = phonenumbers.parse(value, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise ValueError("Enter a valid phone number.") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("Enter a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_for_people(value: str) -> str:
    """A stored (E.164) number as people write it: national format for US numbers,
    "(312) 555-0199"; international format for others; as stored if it cannot be read."""
    try:
        number = phonenumbers.parse(value, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return value
    if phonenumbers.region_code_for_number(number) == DEFAULT_REGION:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
