"""The opt-out rules on a labeled corpus (DESIGN §7): precision and recall are printed (run
with ``-s``) and held to a floor; every reply the rules call an opt-out must be one."""

from __future__ import annotations

import pytest

from messaging.opt_out_words import Verdict, normalize, opt_out_verdict
from tests.trust.opt_out_corpus import (
    HELD_OUT_NOT_OPT_OUTS,
    HELD_OUT_OPT_OUTS,
    NOT_OPT_OUTS,
    OPT_OUTS,
)


def scores(opt_outs: list[str], others: list[str]) -> dict:
    said = {text: opt_out_verdict(text) for text in [*opt_outs, *others]}
    true_pos = sum(said[t] == Verdict.OPT_OUT for t in opt_outs)
    false_pos = sum(said[t] == Verdict.OPT_OUT for t in others)
    return {
        "replies": len(opt_outs) + len(others),
        "precision": true_pos / ((true_pos + false_pos) or 1),
        "recall": true_pos / len(opt_outs),
        "flagged_for_staff": sum(v == Verdict.UNSURE for v in said.values()),
        "missed": [t for t in opt_outs if said[t] == Verdict.NOT],
    }


def test_the_corpus_has_at_least_200_replies_both_ways():
    assert len(OPT_OUTS) >= 100
    assert len(NOT_OPT_OUTS) >= 100
    assert not set(OPT_OUTS) & set(NOT_OPT_OUTS)


def test_precision_and_recall_on_the_corpus(capsys):
    tuned = scores(OPT_OUTS, NOT_OPT_OUTS)
    held = scores(HELD_OUT_OPT_OUTS, HELD_OUT_NOT_OPT_OUTS)
    everything = scores(OPT_OUTS + HELD_OUT_OPT_OUTS, NOT_OPT_OUTS + HELD_OUT_NOT_OPT_OUTS)
    with capsys.disabled():
        for name, found in (("tuned", tuned), ("held out", held), ("all", everything)):
            print(
                f"\nopt-out rules, {name}: {found['replies']} replies, "
                f"precision {found['precision']:.3f}, recall {found['recall']:.3f}, "
                f"{found['flagged_for_staff']} flagged for staff, missed {found['missed']}"
            )
    # Never opt a patient out who did not ask: precision first.
    assert tuned["precision"] == 1.0
    assert held["precision"] == 1.0
    assert tuned["recall"] >= 0.97
    assert held["recall"] >= 0.85


@pytest.mark.parametrize(
    "text",
    ["please stop texting me", "remove me from your list", "no more texts", "unsubscribe me"],
)
def test_the_issue_examples_opt_out(text):
    assert opt_out_verdict(text) == Verdict.OPT_OUT


@pytest.mark.parametrize(
    "text", ["stop by tomorrow?", "can I stop my care plan?", "don't stop the reminders"]
)
def test_the_issue_look_alikes_do_not(text):
    assert opt_out_verdict(text) == Verdict.NOT


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("PLZ STOPPP txting me!!! 😡", "please stop texting me"),
        ("Don\u2019t text me", "do not text me"),
        ("unsubscibe", "unsubscribe"),
        ("Rémove me", "remove me"),
    ],
)
def test_normalize(text, words):
    assert normalize(text) == words


def test_unsure_replies_are_flagged_not_guessed():
    assert opt_out_verdict("too many texts from you guys") == Verdict.UNSURE
    assert opt_out_verdict("wrong number") == Verdict.UNSURE
    assert opt_out_verdict("") == Verdict.NOT
