"""Errors in plain words, naming the field (issue 16, item 12)."""

from __future__ import annotations

import pytest

from campaigns.language.spec import CampaignSerializer

pytestmark = pytest.mark.django_db


def _errors(**data) -> dict:
    body = {
        "name": "N",
        "kind": "drip",
        "trigger": {"type": "birthday"},
        "schedule": {"frequency": "daily", "time": "10:00"},
        "messages": [{"channel": "sms", "body": "Hi"}],
        **data,
    }
    serializer = CampaignSerializer(data=body)
    assert not serializer.is_valid()
    return serializer.errors


def test_weekdays_say_what_to_do():
    errors = _errors(schedule={"frequency": "weekly", "time": "10:00", "weekdays": []})
    text = str(errors)
    assert "Choose at least one day of the week" in text
    assert "A non-empty list" not in text


def test_a_range_says_which_number_is_wrong():
    text = str(_errors(filters={"age": {"min": 40, "max": 20}}))
    assert "The lowest (40) is above the highest (20)." in text
    assert "min must not be above max" not in text
    text = str(_errors(filters={"age": {"min": "x"}}))
    assert "The lowest must be a number." in text


def test_the_status_filter_offers_one_any_status():
    from campaigns.forms.audience import FiltersForm

    labels = [label for _value, label in FiltersForm.base_fields["status"].choices]
    assert labels.count("Any status") == 1
    assert "Any (not filtered)" not in labels
