"""Provider credentials per practice: the Administrators' settings page, encryption at rest,
secrets never shown back, the audit entry without secrets, and the fallback to the
environment's settings."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from trackstat.credentials import credentials_for, provider_credentials_set
from trackstat.models import AuditEvent, ProviderCredentials, Role

pytestmark = pytest.mark.django_db

URL = "/settings/providers/"
SID = "AC" + "ab" * 16
TOKEN = "practice-twilio-token-0123456789"
SG_KEY = "SG.practice-sendgrid-key.abcdef"


@pytest.fixture
def admin_client(member_client):
    return member_client(Role.ADMINISTRATOR)


def save(client, **data):
    form = {"twilio_account_sid": "", "twilio_auth_token": "", "sendgrid_api_key": "", **data}
    return client.post(URL, form)


def stored(client) -> ProviderCredentials:
    return ProviderCredentials.objects.get(practice=client.membership.practice)


def test_the_url_is_the_contract():
    assert reverse("settings_providers") == URL


def test_administrator_sees_the_page_with_nothing_set(admin_client):
    response = admin_client.get(URL)
    assert response.status_code == 200
    assert response.text.count("not set") == 2
    assert reverse("settings_providers") in admin_client.get(reverse("settings_practice")).text


@pytest.mark.parametrize("role", [Role.USER, Role.USER_PLUS, Role.MANAGER])
def test_weaker_roles_get_403(member_client, role):
    client = member_client(role)
    assert client.get(URL).status_code == 403
    assert save(client, twilio_account_sid=SID, twilio_auth_token=TOKEN).status_code == 403
    assert not ProviderCredentials.objects.exists()


def test_logged_out_is_sent_to_login(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_saving_encrypts_and_never_shows_the_secrets(admin_client):
    response = save(
        admin_client, twilio_account_sid=SID, twilio_auth_token=TOKEN, sendgrid_api_key=SG_KEY
    )
    assert response.status_code == 302

    row = stored(admin_client)
    assert row.twilio_account_sid == SID
    assert TOKEN not in row.twilio_auth_token_encrypted
    assert SG_KEY not in row.sendgrid_api_key_encrypted
    assert row.twilio_auth_token_encrypted
    assert row.sendgrid_api_key_encrypted

    page = admin_client.get(URL).text
    assert TOKEN not in page
    assert SG_KEY not in page
    assert SID in page  # not a secret
    assert "not set" not in page
    assert page.count(">set<") == 2


def test_blank_keeps_and_clear_removes(admin_client):
    save(admin_client, twilio_account_sid=SID, twilio_auth_token=TOKEN, sendgrid_api_key=SG_KEY)
    practice = admin_client.membership.practice

    assert save(admin_client, twilio_account_sid=SID).status_code == 302
    credentials = credentials_for(practice)
    assert (credentials.twilio_auth_token, credentials.sendgrid_api_key) == (TOKEN, SG_KEY)

    response = save(admin_client, twilio_account_sid=SID, clear_twilio_auth_token="on")
    assert response.status_code == 302
    row = stored(admin_client)
    assert row.twilio_auth_token_encrypted == ""
    assert row.sendgrid_api_key_encrypted != ""
    # Clear wins over a value typed in the same submission.
    save(admin_client, sendgrid_api_key="SG.other", clear_sendgrid_api_key="on")
    row.refresh_from_db()
    assert row.sendgrid_api_key_encrypted == ""
    assert row.twilio_account_sid == ""  # the SID is a plain field: blank means none


@pytest.mark.parametrize(
    ("data", "field_message"),
    [
        ({"twilio_account_sid": "AC123"}, "Twilio account SID"),
        ({"twilio_account_sid": "XX" + "a" * 32}, "Twilio account SID"),
        ({"sendgrid_api_key": "not-a-sendgrid-key"}, "SendGrid API key"),
        ({"twilio_auth_token": "has spaces in it"}, "Twilio auth token"),
    ],
)
def test_invalid_input_is_400_naming_the_field_without_echoing_secrets(
    admin_client, data, field_message
):
    response = save(admin_client, **data)
    assert response.status_code == 400
    assert field_message in response.text
    for name, value in data.items():
        if name != "twilio_account_sid":
            assert value not in response.text
    assert not ProviderCredentials.objects.exclude(twilio_auth_token_encrypted="").exists()
    assert not AuditEvent.objects.filter(action="practice.provider_credentials_update").exists()


def test_every_change_is_audited_without_the_secrets(admin_client):
    save(admin_client, twilio_account_sid=SID, twilio_auth_token=TOKEN, sendgrid_api_key=SG_KEY)
    save(admin_client, twilio_account_sid=SID, twilio_auth_token=TOKEN + "x")
    save(admin_client, twilio_account_sid=SID)  # nothing changed: no entry
    save(admin_client, twilio_account_sid=SID, clear_sendgrid_api_key="on")

    events = list(
        AuditEvent.objects.filter(
            practice=admin_client.membership.practice,
            action="practice.provider_credentials_update",
        ).order_by("id")
    )
    assert [event.after for event in events] == [
        {"twilio_account_sid": SID, "twilio_auth_token": "set", "sendgrid_api_key": "set"},
        {"twilio_auth_token": "changed"},
        {"sendgrid_api_key": "cleared"},
    ]
    assert events[0].actor == admin_client.membership.user
    everything = repr([(event.before, event.after) for event in events])
    assert TOKEN not in everything
    assert SG_KEY not in everything


def test_another_practice_neither_sees_nor_changes_yours(admin_client, member_client):
    save(admin_client, twilio_account_sid=SID, twilio_auth_token=TOKEN)
    other = member_client(Role.ADMINISTRATOR)
    assert other.membership.practice != admin_client.membership.practice

    page = other.get(URL).text
    assert SID not in page
    assert page.count("not set") == 2
    save(other, twilio_account_sid="AC" + "cd" * 16, clear_twilio_auth_token="on")

    mine = credentials_for(admin_client.membership.practice)
    assert (mine.twilio_account_sid, mine.twilio_auth_token) == (SID, TOKEN)


def test_wrong_method_is_refused(admin_client):
    assert admin_client.put(URL).status_code == 405
    assert not ProviderCredentials.objects.exists()


# --- credentials_for -----------------------------------------------------------------------


@pytest.fixture
def environment(settings):
    settings.TWILIO_ACCOUNT_SID = "AC" + "0" * 32
    settings.TWILIO_AUTH_TOKEN = "environment-token"
    settings.SENDGRID_API_KEY = "SG.environment"
    return settings


def test_credentials_fall_back_to_the_environment_field_by_field(
    environment, practice, other_practice
):
    provider_credentials_set(practice=practice, actor="test", twilio_auth_token=TOKEN)

    mine = credentials_for(practice)
    assert mine.twilio_account_sid == "AC" + "0" * 32
    assert mine.twilio_auth_token == TOKEN
    assert mine.sendgrid_api_key == "SG.environment"
    assert TOKEN not in repr(mine)

    theirs = credentials_for(other_practice)
    assert (theirs.twilio_auth_token, theirs.sendgrid_api_key) == (
        "environment-token",
        "SG.environment",
    )
    assert credentials_for(None).twilio_auth_token == "environment-token"


def test_a_rotated_secret_key_makes_stored_secrets_count_as_unset(environment, practice, caplog):
    provider_credentials_set(practice=practice, actor="test", sendgrid_api_key=SG_KEY)
    environment.SECRET_KEY = "a-different-secret-key-after-rotation-0123456789"

    assert credentials_for(practice).sendgrid_api_key == "SG.environment"
    assert "cannot be decrypted" in caplog.text
    assert SG_KEY not in caplog.text


def test_the_service_refuses_unknown_fields(practice):
    with pytest.raises(ValidationError, match="twilio_password"):
        provider_credentials_set(practice=practice, actor="test", twilio_password="x")


OLD_KEY = "the-secret-key-before-the-rotation-0123456789"
NEW_KEY = "the-secret-key-after-the-rotation-9876543210"


def test_a_rotated_secret_key_keeps_stored_secrets_readable_through_its_fallback(
    environment, practice
):
    environment.SECRET_KEY = OLD_KEY
    provider_credentials_set(practice=practice, actor="test", sendgrid_api_key=SG_KEY)
    environment.SECRET_KEY, environment.SECRET_KEY_FALLBACKS = NEW_KEY, [OLD_KEY]

    assert credentials_for(practice).sendgrid_api_key == SG_KEY


def test_rotate_credentials_re_encrypts_under_the_new_key_so_the_fallback_can_go(
    environment, practice, other_practice
):
    environment.SECRET_KEY = OLD_KEY
    provider_credentials_set(practice=practice, actor="test", twilio_auth_token=TOKEN)
    provider_credentials_set(practice=other_practice, actor="test", sendgrid_api_key=SG_KEY)
    environment.SECRET_KEY, environment.SECRET_KEY_FALLBACKS = NEW_KEY, [OLD_KEY]
    out = StringIO()

    call_command("rotate_credentials", stdout=out)

    assert "2 practices" in out.getvalue()
    assert TOKEN not in out.getvalue()
    assert SG_KEY not in out.getvalue()
    environment.SECRET_KEY_FALLBACKS = []
    assert credentials_for(practice).twilio_auth_token == TOKEN
    assert credentials_for(other_practice).sendgrid_api_key == SG_KEY


def test_rotate_credentials_leaves_what_no_key_can_read_and_says_so(environment, practice):
    environment.SECRET_KEY = OLD_KEY
    provider_credentials_set(practice=practice, actor="test", sendgrid_api_key=SG_KEY)
    environment.SECRET_KEY, environment.SECRET_KEY_FALLBACKS = NEW_KEY, []
    before = ProviderCredentials.objects.get(practice=practice).sendgrid_api_key_encrypted
    out = StringIO()

    call_command("rotate_credentials", stdout=out)

    assert f"practice {practice.pk}: sendgrid_api_key cannot be decrypted" in out.getvalue()
    assert ProviderCredentials.objects.get(practice=practice).sendgrid_api_key_encrypted == before
