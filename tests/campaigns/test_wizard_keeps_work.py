"""The wizard never loses typed work (issue 16, item 4): a step's pill saves the step before
moving (or keeps the step open with its mistakes marked), and messages added on step 3 are
kept in the draft as typed, so a reload shows them."""

from __future__ import annotations

import pytest

from campaigns.views.wizard_state import draft_key
from tests.campaigns.test_wizard import _audience, _practice, _steps, _url
from trackstat.models import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def plus(member_client):
    return member_client(Role.USER_PLUS)


def _draft(client):
    return client.session.get(draft_key(_practice(client).pk, None)) or {}


def test_a_step_pill_saves_the_step_before_moving(plus):
    response = plus.post(_url("name"), {"name": "Typed name", "action": "go_messages"})
    assert response.status_code == 302
    assert response["Location"] == _url("messages")
    assert _draft(plus)["name"] == "Typed name"

    data = {**_audience({"type": "birthday"}), "action": "go_name"}
    response = plus.post(_url("audience"), data)
    assert response["Location"] == _url("name")
    assert _draft(plus)["trigger"] == {"type": "birthday", "offset_days": 0}


def test_a_pill_from_a_step_with_a_mistake_stays_and_marks_it(plus):
    response = plus.post(_url("name"), {"name": "", "action": "go_review"})
    assert response.status_code == 400
    assert "Name:" in response.text


def test_the_pills_are_buttons_of_the_step_form(plus):
    page = plus.get(_url("name")).text
    assert 'form="name-form" name="action" value="go_audience"' in page
    assert 'id="name-form"' in page
    assert "data-unsaved-warning" in page


def test_messages_added_on_step_3_survive_a_reload(plus):
    plus.post(_url("name"), {"name": "N"})
    plus.post(_url("audience"), _audience({"type": "birthday"}))
    typed = _steps({"channel": "sms", "body": "Typed, not yet Next"})
    response = plus.post(_url("messages"), {**typed, "action": "add_email"})
    assert response.status_code == 302  # Post/Redirect/Get: a reload repeats nothing
    page = plus.get(response["Location"]).text
    assert ">Typed, not yet Next</textarea>" in page
    assert 'name="step-1-subject"' in page
    # Leaving by a pill with an unfinished email keeps the step open, and the rows kept.
    unfinished = _steps(
        {"channel": "sms", "body": "Typed, not yet Next"},
        {"channel": "email", "subject": "", "body": ""},
    )
    response = plus.post(_url("messages"), {**unfinished, "action": "go_goals"})
    assert response.status_code == 400
    assert _draft(plus)["messages"] == []
    assert ">Typed, not yet Next</textarea>" in plus.get(_url("messages")).text


def test_a_message_step_left_by_a_pill_is_saved(plus):
    plus.post(_url("name"), {"name": "N"})
    plus.post(_url("audience"), _audience({"type": "birthday"}))
    typed = _steps({"channel": "sms", "body": "Hello there"})
    response = plus.post(_url("messages"), {**typed, "action": "go_review"})
    assert response["Location"] == _url("review")
    assert _draft(plus)["messages"][0]["body"] == "Hello there"
    assert "message_rows" not in _draft(plus)
