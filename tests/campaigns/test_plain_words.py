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


def _filters_form(data: dict, *, financials: bool = True):
    from campaigns.forms.audience import FiltersForm
    from tests.factories import PracticeFactory

    form = FiltersForm(
        {f"filter-{k}": v for k, v in data.items()},
        practice=PracticeFactory(),
        can_see_financials=financials,
        prefix="filter",
    )
    assert not form.is_valid()
    return form


def test_a_range_error_about_the_highest_shows_under_the_at_most_field():
    form = _filters_form({"paid_total_max": "2000000000"})
    assert form.errors.keys() == {"paid_total_max"}
    assert form.errors["paid_total_max"] == ["The highest must be from 0 to 1,000,000,000."]
    form = _filters_form({"age_min": "5", "age_max": "200"})
    assert form.errors.keys() == {"age_max"}


def test_a_range_error_about_the_lowest_shows_under_the_at_least_field():
    form = _filters_form({"paid_total_min": "2000000000", "paid_total_max": "10"})
    assert form.errors.keys() == {"paid_total_min"}
    form = _filters_form({"paid_total_min": "40", "paid_total_max": "20"})
    assert form.errors == {"paid_total_min": ["The lowest (40) is above the highest (20)."]}


def test_the_blast_form_shows_every_error_of_a_submission_at_once(member_client):
    from django.urls import reverse

    from campaigns.models import Campaign
    from trackstat.models import Role

    client = member_client(Role.USER_PLUS)
    response = client.post(
        reverse("campaigns:blast_new"),
        {
            "name": "",  # the form's own check
            "channel": "email",
            "subject": "",  # the campaign validators' check
            "body": "Hi",
            "send_mode": "asap",
            "filter-age_min": "40",  # the filters' check
            "filter-age_max": "20",
        },
    )

    assert response.status_code == 400
    text = response.content.decode()
    assert "Give it a name." in text
    assert "An email needs a subject." in text
    assert "The lowest (40) is above the highest (20)." in text
    assert not Campaign.objects.exists()


def test_review_and_variant_errors_name_the_inputs_as_staff_see_them():
    from campaigns.forms.messages import _variant_error_lines
    from campaigns.views.wizard import _review_errors

    lines = _review_errors(
        {
            "messages": {"messages": [{"body": ["Unknown merge field {{Foo}}."]}]},
            "audience": {"exclude_recent_days": ["Must be between 1 and 3650."]},
            "review": {"holdout_percent": ["Must be between 0 and 50."]},
        }
    )
    text = " ".join(line for step in lines.values() for line in step)
    assert "Message 1, message: Unknown merge field {{Foo}}." in text
    assert "Skip patients messaged recently: Must be between 1 and 3650." in text
    assert "Hold out (%): Must be between 0 and 50." in text
    assert "_" not in text.replace("{{Foo}}", "")
    variant = _variant_error_lines([{"weight": ["A whole number from 1 to 100."]}], [{"name": "B"}])
    assert variant == ["Variant B, share of patients (%): A whole number from 1 to 100."]
