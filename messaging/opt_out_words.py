"""Opt-outs in the patient's own words (DESIGN §7; the FCC's 2025 consent-revocation rule):
a reply a reasonable person reads as "stop texting me" opts out of texts, in any wording.

Deterministic, readable rules over normalized text, no model: the text is lower-cased, its
accents, emoji and punctuation dropped, common misspellings and shorthands mapped to one
spelling ("pls" → "please", "txts" → "texts", "unsubscibe" → "unsubscribe"), and then:

1. **Not an opt-out** when the words are about something else that only looks similar:
   "stop by", "stop in", "don't stop the reminders", "can I stop my care plan?", "the pain
   stopped", "keep texting me". These go to the Inbox like any reply.
2. **An opt-out** when the reply asks, in so many words, to end the messages: a stop verb
   ("stop", "quit", "cease", "no more", "don't", "never") with what is being sent ("texts",
   "messages", "texting me", "contacting me", "sending"), or a removal phrase ("remove me",
   "take me off your list", "unsubscribe me", "opt me out", "delete my number", "leave me
   alone"), or a short reply that is little more than "stop" ("stop please", "STOP!!!",
   "stop it").
3. **Unsure** when it has a hint of one (a stop word, "too many texts", "wrong number",
   "why do you keep texting") without matching a rule: staff see it in the Inbox flagged
   "might be an opt-out" rather than the system guessing.

``tests/trust/test_opt_out_words.py`` holds a labeled corpus of replies both ways and prints
the rules' precision and recall on it (``python -m pytest tests/trust/test_opt_out_words.py
-s``).
"""

from __future__ import annotations

import enum
import re
import unicodedata


class Verdict(enum.StrEnum):
    OPT_OUT = "opt_out"
    UNSURE = "unsure"
    NOT = "not"


# Common misspellings and shorthands, word by word (after lower-casing and punctuation).
SPELLINGS = {
    "stp": "stop",
    "sotp": "stop",
    "stopp": "stop",
    "stahp": "stop",
    "stoo": "stop",
    "pls": "please",
    "plz": "please",
    "plez": "please",
    "pleas": "please",
    "plse": "please",
    "pleaes": "please",
    "txt": "text",
    "txts": "texts",
    "txting": "texting",
    "texing": "texting",
    "tx": "text",
    "texs": "texts",
    "textes": "texts",
    "msg": "message",
    "msgs": "messages",
    "msging": "messaging",
    "msgng": "messaging",
    "mesages": "messages",
    "messges": "messages",
    "massages": "messages",
    "messeges": "messages",
    "unsubscibe": "unsubscribe",
    "unsubcribe": "unsubscribe",
    "unsuscribe": "unsubscribe",
    "unsubsribe": "unsubscribe",
    "unsubscrib": "unsubscribe",
    "unsub": "unsubscribe",
    "unsubscribed": "unsubscribe",
    "remvoe": "remove",
    "remov": "remove",
    "romove": "remove",
    "u": "you",
    "ur": "your",
    "yr": "your",
    "r": "are",
    "im": "i am",
    "dont": "do not",
    "don": "do",  # "don t" after the apostrophe is gone
    "cant": "can not",
    "cannot": "can not",
    "wont": "will not",
    "pleaseee": "please",
    "optout": "opt out",
    "opt-out": "opt out",
    "nomore": "no more",
    "anymore": "any more",
}

# What is being sent: the object of a stop verb that makes it an opt-out.
SENT = (
    r"(text|texts|texting|txting|message|messages|messaging|sms|msg|"
    r"reminders? texts?|notifications?|spam|spamming|contact|contacting|calling and texting|"
    r"communications?|"
    r"sending|send(ing)? me|emailing me texts|these|this)"
)
STOP_VERB = r"(stop|quit|cease|end|halt|discontinue|no more|do not|never|please do not)"

# 1. Looks similar, is something else.
NOT_RULES = [
    r"\bstop(ping|ped)? (by|in|over|at|off|for)\b",  # "stop by tomorrow?"
    r"\b(do not|never|please do not) stop\b",  # "don't stop the reminders"
    r"\bkeep (the )?(texts|texting|messages|reminders|sending|them coming)\b",
    r"\bstop (my|the|our|his|her) (care|treatment|plan|care plan|therapy|visits|adjustments|"
    r"appointments?|meds|medication|payments?|insurance|membership|package|stretches|"
    r"exercises|subscription box)\b",
    r"\b(pain|hurting|bleeding|swelling|ache|headaches?|numbness|tingling) (has |have )?"
    r"(stopped|stop)\b",
    r"\bstopped (hurting|aching)\b",
    r"\b(can|could|should|when can|do i|will) (i|we) stop (taking|doing|the exercises|"
    r"icing|wearing)\b",
    r"\bstop sign\b",
    r"\bbus stop\b",
    r"\bnon ?stop\b",
    r"\bcan not stop\b",
    r"\bend of (the )?(day|week|month)\b",
]
# 2. An opt-out in so many words.
OPT_OUT_RULES = [
    rf"\b{STOP_VERB} (with |all |any |the |these |your |ur |those |further |more |future )*"
    rf"(\w+ )?{SENT}\b",
    rf"\b{STOP_VERB} (text|txt|message|contact|sms|spam)(ing)? (me|us|my|this)\b",
    r"\b(stop|quit|no more|do not) (sending|send) (me|us|anything|any)\b",
    r"\bdo not (want|need) (any )?(more )?(texts|messages|these|your texts|them)\b",
    r"\b(do not|never) (text|message|contact|sms) (me|us|this number)\b",
    r"\bno (more )?(texts|messages|text messages|sms)\b",
    r"\b(remove|delete|take|erase) (me|my (cell |phone |mobile )?number|this number|us)"
    r"( off| from)?\b",
    r"\bunsubscribe\b",
    r"\bopt (me )?out\b",
    r"\bopting out\b",
    r"\b(lose|forget) (my|this) number\b",
    r"\bleave me alone\b",
    r"\b(take|get) me off\b",
    r"\bstop (it|now|already|please|pls|immediately|asap)\b",
    r"\bplease stop\b",
    r"^(\w+ ){0,5}stop$",  # a short reply ending in "stop": "this is spam, stop"
    r"\bstop (contacting|bothering|harassing|spamming|messaging|texting|calling and texting)\b",
    r"\b(no|not) (longer )?(want|wish) to (receive|get) (texts|messages|these)\b",
    r"\bi (do not|no longer) want (texts|messages|these texts|these messages)\b",
    r"\bwithdraw (my )?consent\b",
    r"\brevoke (my )?consent\b",
    r"\bcancel (my )?(texts|messages|text messages|subscription|sms)\b",
    r"\bend (texts|messages)\b",
    r"\bnot interested\b.*\b(texts|messages|stop)\b",
]
# 3. A hint of one, not enough to act on.
UNSURE_RULES = [
    r"\bstop\b",
    r"\bunsub",
    r"\bquit\b",
    r"\btoo many (texts|messages)\b",
    r"\bwrong number\b",
    r"\b(why|how) (do|are) you (keep )?(texting|messaging|sending)\b",
    r"\bkeep (texting|messaging) me\b",
    r"\benough\b",
    r"\bnot interested\b",
    r"\bspam\b",
    r"\bremove\b",
    r"\bopt\b",
]
_NOT = [re.compile(rule) for rule in NOT_RULES]
_OPT_OUT = [re.compile(rule) for rule in OPT_OUT_RULES]
_UNSURE = [re.compile(rule) for rule in UNSURE_RULES]
# A reply of at most this many words that says "stop" is a stop ("stop please", "STOP!!").
SHORT_REPLY_WORDS = 3
# Not "cancel" or "end": "cancel please" is more likely about an appointment (the exact
# keywords CANCEL and END are opt-outs already, ``messaging.inbound``).
SHORT_STOP_WORDS = {"stop", "quit", "unsubscribe", "stopall", "optout"}
FILLER = {"please", "now", "it", "thanks", "thank", "you", "ok", "okay", "just", "already"}


def normalize(text: str) -> str:
    """Lower-case words without accents, emoji or punctuation, common misspellings mapped
    to one spelling, single spaces."""
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.lower().replace("\u2019", "'").replace("'", "")
    # Letters and digits stay; everything else (punctuation, emoji, symbols) is a space.
    text = "".join(c if c.isalnum() else " " for c in text)
    words = []
    for word in text.split():
        word = re.sub(r"(.)\1{2,}", r"\1", word)  # "stoppp", "pleaseee" → one letter
        words.append(SPELLINGS.get(word, word))
    return " ".join(" ".join(words).split())


def opt_out_verdict(text: str) -> Verdict:
    """Whether a reply opts out of texts: ``opt_out``, ``unsure`` (flag it for staff) or
    ``not``."""
    words = normalize(text)
    if not words:
        return Verdict.NOT
    tokens = words.split()
    meaningful = [t for t in tokens if t not in FILLER]
    if len(tokens) <= SHORT_REPLY_WORDS + 1 and meaningful and set(meaningful) <= SHORT_STOP_WORDS:
        return Verdict.OPT_OUT
    if any(rule.search(words) for rule in _NOT):
        return Verdict.NOT
    if any(rule.search(words) for rule in _OPT_OUT):
        return Verdict.OPT_OUT
    if any(rule.search(words) for rule in _UNSURE):
        return Verdict.UNSURE
    return Verdict.NOT
