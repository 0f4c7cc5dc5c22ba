"""SMS length and segment count, as carriers count them (DESIGN §5.4).

A text that uses only the GSM-7 alphabet is sent in GSM-7: 160 characters in one message, or
153 per segment once it needs several (the rest carries the concatenation header). Characters
of the GSM-7 extension table (``€``, ``[``, ``{``, …) are sent as an escape plus the character,
so they count two. Any other character (a curly quote, an accented letter outside the alphabet,
an emoji) switches the whole text to UCS-2: 70 in one message, 67 per segment, counted in
UTF-16 code units (an emoji outside the Basic Multilingual Plane counts two).

An escape pair or a surrogate pair is never split between two segments, so a segment may hold
one unit less than its maximum.
"""

from __future__ import annotations

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7 = "GSM-7"
UCS2 = "UCS-2"
LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}
# The longest text body a step may have (Twilio's limit: ten segments or so).
SMS_MAX_LENGTH = 1600


def is_gsm7(character: str) -> bool:
    return character in GSM7_BASIC or character in GSM7_EXTENSION


def non_gsm7_characters(text: str) -> list[str]:
    """The distinct characters that force UCS-2, in order of appearance (to show staff)."""
    return list(dict.fromkeys(ch for ch in text if not is_gsm7(ch)))


def _units(text: str) -> tuple[str, list[int]]:
    if all(is_gsm7(ch) for ch in text):
        return GSM7, [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return UCS2, [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def sms_segments(text: str) -> dict:
    """``{"encoding": "GSM-7" | "UCS-2", "length": n, "segments": k}`` for ``text``.

    ``length`` is in the encoding's units (septets or UTF-16 code units); an empty text has no
    segment.
    """
    encoding, units = _units(text)
    length = sum(units)
    single, per_segment = LIMITS[encoding]
    if length == 0:
        segments = 0
    elif length <= single:
        segments = 1
    else:
        segments, used = 1, 0
        for unit in units:
            if used + unit > per_segment:
                segments, used = segments + 1, 0
            used += unit
    return {"encoding": encoding, "length": length, "segments": segments}


def sms_counts(text: str) -> dict:
    """What the message editors show under an SMS body: ``sms`` (``sms_segments``) and
    ``non_gsm`` (``non_gsm7_characters``)."""
    return {"sms": sms_segments(text), "non_gsm": non_gsm7_characters(text)}
