"""Reading a reply to a reminder that asked (DESIGN §7): confirm, cancel, reschedule or unclear.

Deterministic rules over normalized text, in this order, so a reader can follow any verdict:

1. Normalize: Unicode NFKC, lower case, curly quotes straightened, apostrophes dropped
   ("can't" → "cant"), emoji and symbols mapped to words (👍 ✅ 👌 → "yes"), punctuation other
   than "?" turned into spaces, letters repeated three or more times squeezed ("yesss").
2. Empty → unclear.
3. The practice's own codes, alone or with polite words: C (confirm), R (reschedule)
   ("R please").
4. Reschedule wording anywhere ("reschedule", "move it", "another day", "can I come at 3")
   wins over everything: a patient who asks for another time wants a call, whatever else
   they said ("yes but can I come at 3?", "cant make it, can we do friday").
5. Cancel wording anywhere ("cancel my appointment", "cant make it", "wont be there").
6. A question (a "?" or a question word first), or news such as "running late", with nothing
   above → unclear: a person answers ("what time was it?", "ok where do I park?").
7. Confirm wording ("yes", "ok", "see you then", "confirmed", 👍) with nothing above → confirm.
8. Anything else → unclear (the Inbox).

Opt-out wording is not read here: the inbound path checks it first and it always wins
(``messaging.inbound``); ``is_opt_out_wording`` also refuses the keywords with punctuation
around them ("Stop." "CANCEL!") so they never become an answer.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

from messaging.inbound import STOP_KEYWORDS


class Answer(StrEnum):
    CONFIRM = "confirm"
    CANCEL = "cancel"
    RESCHEDULE = "reschedule"
    UNCLEAR = "unclear"


# Emoji and symbols people answer with, as words. Skin-tone modifiers and variation
# selectors are dropped first.
EMOJI_WORDS = {
    "👍": " yes ",
    "👌": " yes ",
    "✅": " yes ",
    "✔": " yes ",
    "☑": " yes ",
    "🙂": " ",
    "😊": " ",
    "😀": " ",
    "😃": " ",
    "🙏": " thanks ",
    "❤": " ",
    "👎": " no ",
    "❌": " no ",
    "✖": " no ",
    "🚫": " no ",
    "📅": " ",
}
EMOJI_MODIFIERS = re.compile("[\U0001f3fb-\U0001f3ff\ufe0e\ufe0f\u200d]")
# Curly and look-alike apostrophes and quotes (written as escapes: they look like ' and ").
QUOTES = str.maketrans(
    {"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'", "\u201c": '"', "\u201d": '"'}
)

CODES = {"c": Answer.CONFIRM, "r": Answer.RESCHEDULE}

RESCHEDULE = re.compile(
    r"\b("
    r"re ?sched\w*|resked\w*|rescedule\w*"
    r"|move (it|my|the|this|that|our|appt|appointment)\b"
    r"|need to move|have to move|want to move|like to move"
    r"|change (it|my|the|this|that|appt|appointment|time|day|date)\b"
    r"|push (it|my|the|this) (back|out)|push back"
    r"|(another|different|other|new|later|earlier) (time|day|date|slot|appt|appointment)"
    r"|(a|any) ?(later|earlier) one|(anything|something) (later|earlier)"
    r"|can (i|we) (come|do|make it|switch|go) "
    r"|could (i|we) (come|do|make it|switch) "
    r"|(switch|swap) (it|my|the|to|times?)\b"
    r"|instead\b"
    r"|rain ?check"
    r")"
)
CANCEL = re.compile(
    r"\b("
    r"cancel\w*"
    r"|(cant|cannot|can not|wont|will not|wouldnt|couldnt|not going to|not gonna|unable to"
    r"|not able to|wont be able to|cant be able to) "
    r"(make|come|go|attend|be there|be in|do|keep)"
    r"|(cant|cannot|can not|wont|not) (make it|come|be there|be able)"
    r"|(not going to|not gonna|wont|will not|wont be|am not|im not) (be )?able to"
    r"|not (coming|going to make|gonna make)"
    r"|(need|have|want|going) to (drop|skip) (it|my|the|this)"
    r"|call(ing)? (it )?off"
    r"|wont be (there|in|coming)|will not be (there|in|coming)"
    r"|no longer (need|coming|come)"
    r"|(dont|do not) (need|want) (it|the appointment|the appt|my appointment|to come)"
    r")"
)
CONFIRM = re.compile(
    r"\b("
    r"c|y|k|ye+s+|ye|yea+h*|yeh|yep+|yup+|ya|yah|yass|si|o+k+|okay|okey|okie|kk|oki"
    r"|sure|confirm\w*|affirmative|absolutely|definitely|certainly|of course|correct"
    r"|see (you|ya|u)( (then|there|soon|tomorrow|tmrw|tmr|monday|tuesday|wednesday|thursday"
    r"|friday|saturday|sunday))?"
    r"|(will|ill|i will|we will|well) (be there|see you|be in|come|make it)"
    r"|be there|sounds good|sounds great|perfect|great|got it|works( for me)?|all good"
    r"|thats fine|fine|alright|all right|roger|deal|will do|on my way|coming"
    r")\b"
)
QUESTION_START = re.compile(
    r"^(what|when|where|who|which|why|how|is|are|do|does|did|was|were|am i|could|should"
    r"|would|is it|whats|wheres|whens)\b"
)
# News for staff, not an answer ("on my way but running late").
NOT_AN_ANSWER = re.compile(r"\b(running late|be late|running behind|late today)\b")
# Polite words around a code ("R please", "C thanks") leave it a code.
FILLER = re.compile(r"\b(please|pls|plz|thanks|thank you|thx|ty|ok|okay)\b")
NEGATED_CONFIRM = re.compile(r"\b(not|no|dont|nope|nah|never)\b")
NOT_NEGATIONS = re.compile(r"\b(no (problem|worries|prob|probs)|not a problem)\b")
SQUEEZE = re.compile(r"([a-z])\1{2,}")
PUNCTUATION = re.compile(r"[^\w\s?]")


def normalize(text: str) -> str:
    """Lower-case words and "?" only: emoji as words, apostrophes dropped, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text or "").translate(QUOTES).lower()
    text = EMOJI_MODIFIERS.sub("", text)
    for symbol, word in EMOJI_WORDS.items():
        text = text.replace(symbol, word)
    text = text.replace("'", "")
    text = PUNCTUATION.sub(" ", text).replace("_", " ")
    text = SQUEEZE.sub(r"\1\1", text)
    return " ".join(text.split())


def is_opt_out_wording(text: str) -> bool:
    """An opt-out keyword, whatever punctuation or emoji surrounds it ("Stop." "CANCEL!")."""
    return normalize(text).replace("?", "").strip().upper() in STOP_KEYWORDS


def classify_reply(text: str) -> Answer:
    """What a reply to a reminder that asked means (see the module's rules)."""
    words = normalize(text)
    bare = words.replace("?", "").strip()
    if not bare:
        return Answer.UNCLEAR
    code = " ".join(FILLER.sub(" ", bare).split())
    if code in CODES:
        return CODES[code]
    if RESCHEDULE.search(bare):
        return Answer.RESCHEDULE
    if CANCEL.search(bare):
        return Answer.CANCEL
    if "?" in words or QUESTION_START.match(bare) or NOT_AN_ANSWER.search(bare):
        return Answer.UNCLEAR
    if CONFIRM.search(bare) and not NEGATED_CONFIRM.search(NOT_NEGATIONS.sub("", bare)):
        return Answer.CONFIRM
    return Answer.UNCLEAR
