"""The wizard's experiment parts (DESIGN §5.9): a variant added to a step and previewed one by
one (step 3), the control group and the outcome window (step 4), saved into the campaign."""

from __future__ import annotations

import pytest

from campaigns.models import Campaign
from campaigns.services import campaign_as_json
from tests.campaigns.test_wizard import (
    HTMX,
    _audience,
    _draft,
    _patients,
    _post,
    _practice,
    _steps,
    _url,
    frozen_time,  # noqa: F401 (autouse)
    plus,  # noqa: F401 (fixture)
)

pytestmark = pytest.mark.django_db


def _variants(*bodies: str, weights=None) -> dict:
    data = {"step-0-channel": "sms", "step-0-delay_value": "0", "step-0-delay_unit": "days"}
    for j, body in enumerate(bodies):
        name = "ABCD"[j]
        data[f"step-0-variant-{j}-name"] = name
        data[f"step-0-variant-{j}-subject"] = ""
        data[f"step-0-variant-{j}-body"] = body
        data[f"step-0-variant-{j}-weight"] = str(weights[j] if weights else 100 // len(bodies))
    return data


def test_add_a_variant_preview_each_hold_out_and_save(plus):  # noqa: F811
    practice = _practice(plus)
    _patients(practice, {"external_id": "A-1", "first_name": "Ada", "last_name": "Lovelace"})
    assert _post(plus, "name", {"name": "Reactivation"}).status_code == 302
    audience = _audience({"type": "first_visit", "days_after": "0"}, {"status": "active"})
    assert _post(plus, "audience", audience).status_code == 302

    # "+ Variant" splits the message into A and B, both starting from its text.
    row = {"channel": "sms", "body": "We miss you, {{PatientFirstName}}"}
    response = _post(plus, "messages", _steps(row), action="add_variant-0")
    assert response.status_code == 302  # the step's rows kept in the draft (issue 16, item 4)
    response = plus.get(response["Location"])
    assert 'name="step-0-variant-0-name" id="step-0-variant-0-name" value="A"' in response.text
    assert 'name="step-0-variant-1-name" id="step-0-variant-1-name" value="B"' in response.text
    assert 'name="step-0-variant-1-weight" id="step-0-variant-1-weight" value="50"' in response.text

    # Preview shows each variant rendered for the patient.
    data = {**_variants("We miss you, {{PatientFirstName}}", "Book today, {{PatientFirstName}}!")}
    data["preview_patient"] = "Lovelace"
    response = _post(plus, "messages", data, action="preview-0", headers=HTMX)
    assert response.status_code == 200
    assert "Variant A" in response.text
    assert "We miss you, Ada" in response.text
    assert "Variant B" in response.text
    assert "Book today, Ada!" in response.text

    # A third variant evens the weights out; weights that do not add up are a 400.
    response = plus.get(_post(plus, "messages", data, action="add_variant-0")["Location"])
    assert 'id="step-0-variant-2-weight" value="33"' in response.text
    bad = _variants("a", "b", weights=[50, 40])
    response = _post(plus, "messages", bad)
    assert response.status_code == 400
    assert "add up to 100" in response.text

    assert _post(plus, "messages", data).status_code == 302
    assert _draft(plus)["messages"][0]["variants"][1]["name"] == "B"

    # Step 4: the control group, shown on a one-message campaign too.
    goals = plus.get(_url("goals"))
    assert "Hold out (control group)" in goals.text
    response = _post(plus, "goals", {"holdout_percent": "60", "attribution_days": "30"})
    assert response.status_code == 400
    assert "less than or equal to 50" in response.text
    response = _post(plus, "goals", {"holdout_percent": "10", "attribution_days": "45"})
    assert response.status_code == 302
    review = plus.get(_url("review"))
    assert "Control group: 10%" in review.text
    assert "Variant B" in review.text
    assert _post(plus, "review", {}, action="save").status_code == 302

    data = campaign_as_json(Campaign.objects.get(practice=practice))
    assert (data["holdout_percent"], data["attribution_days"]) == (10, 45)
    assert [(v["name"], v["weight"], v["body"]) for v in data["messages"][0]["variants"]] == [
        ("A", 50, "We miss you, {{PatientFirstName}}"),
        ("B", 50, "Book today, {{PatientFirstName}}!"),
    ]


def test_removing_the_last_variant_but_one_makes_a_plain_message_again(plus):  # noqa: F811
    data = _variants("first", "second")
    response = _post(plus, "messages", data, action="remove_variant-0")
    assert response.status_code == 302
    response = plus.get(response["Location"])
    assert "step-0-variant-0-name" not in response.text
    assert ">first</textarea>" in response.text
