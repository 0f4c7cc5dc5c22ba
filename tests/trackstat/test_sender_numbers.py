"""A sender number belongs to one practice (issue 13, A1).

Inbound texts are routed to the practice whose ``sms_from`` is the message's ``To``, so two
practices with one number would read (and answer STOP for) each other's patients, and either
could send as the other. Every path that sets the number refuses one that another practice
uses, compared in E.164 whatever form it was typed in; a blank number stays allowed for any
number of practices. The database holds the rule too (a conditional unique constraint), and
the migration that adds it refuses to run over existing duplicates, naming them.
"""

from __future__ import annotations

import json
import threading
import time
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse

from messaging.models import InboundMessage
from tests.factories import MembershipFactory, PatientFactory, PracticeFactory, UserFactory
from tests.messaging.test_webhooks import EMPTY_TWIML, INBOUND_PATH, TOKEN, twilio_post
from tests.trackstat.test_settings_pages import practice_form
from trackstat.models import ApiKey, Practice, Role
from trackstat.services import practice_settings_update

pytestmark = pytest.mark.django_db

TAKEN = "Another practice already uses this sender phone number."
needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="two transactions claiming one number at once need PostgreSQL (CI sets "
    "DATABASE_URL); SQLite serializes writers",
)


@pytest.fixture
def owner():
    return PracticeFactory(name="Main Street Chiropractic", sms_from="+13125550199")


# --- the database ----------------------------------------------------------------------------


def test_the_database_refuses_a_second_practice_with_the_number(owner):
    with pytest.raises(IntegrityError), transaction.atomic():
        Practice.objects.create(name="Copycat", slug="copycat", sms_from=owner.sms_from)


def test_any_number_of_practices_may_have_no_sender_number():
    for n in range(3):
        Practice.objects.create(name=f"No number {n}", slug=f"no-number-{n}", sms_from="")
    assert Practice.objects.filter(sms_from="").count() == 3


def test_model_validation_names_the_field(owner):
    practice = Practice(name="Copycat", slug="copycat", sms_from=owner.sms_from)
    with pytest.raises(ValidationError) as error:
        practice.full_clean()
    assert error.value.message_dict == {"sms_from": [TAKEN]}
    owner.full_clean()  # its own number is no conflict


# --- create_practice -------------------------------------------------------------------------


def test_create_practice_refuses_a_number_another_practice_uses_in_any_form(owner):
    with pytest.raises(CommandError, match=f"--sms-from: {TAKEN}"):
        call_command(
            "create_practice", "Copycat", "--timezone", "UTC", "--sms-from", "(312) 555-0199"
        )
    assert list(Practice.objects.all()) == [owner]
    assert not ApiKey.objects.exists()


def test_create_practice_without_a_number_twice():
    for name in ("First", "Second"):
        out = StringIO()
        call_command("create_practice", name, "--timezone", "UTC", "--json", stdout=out)
        assert Practice.objects.get(pk=json.loads(out.getvalue())["id"]).sms_from == ""


# --- the practice settings page ------------------------------------------------------------


def test_settings_page_refuses_another_practices_number_naming_the_field(member_client, owner):
    client = member_client(Role.ADMINISTRATOR)
    practice = client.membership.practice
    before = practice.sms_from

    response = client.post(
        reverse("settings_practice"), practice_form(practice, sms_from="312.555.0199")
    )

    assert response.status_code == 400
    assert response.context["form"].errors["sms_from"] == [TAKEN]
    assert TAKEN in response.text
    assert owner.name not in response.text  # another tenant's name is none of their business
    practice.refresh_from_db()
    assert practice.sms_from == before


def test_settings_page_keeps_the_practices_own_number_and_allows_clearing_it(member_client):
    client = member_client(Role.ADMINISTRATOR)
    practice = client.membership.practice
    PracticeFactory(sms_from="")

    kept = client.post(reverse("settings_practice"), practice_form(practice))
    cleared = client.post(reverse("settings_practice"), practice_form(practice, sms_from=""))

    assert (kept.status_code, cleared.status_code) == (302, 302)
    practice.refresh_from_db()
    assert practice.sms_from == ""


# --- the Django admin ----------------------------------------------------------------------


@pytest.fixture
def operator_client() -> Client:
    operator = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(operator)
    return client


def admin_practice_form(**changes) -> dict:
    data = {
        "name": "Admin Made",
        "slug": "admin-made",
        "time_zone": "America/Chicago",
        "phone": "",
        "address_line1": "",
        "address_line2": "",
        "city": "",
        "state": "",
        "postal_code": "",
        "sending_window_start": "08:00",
        "sending_window_end": "21:00",
        "sms_from": "",
        "email_from": "",
        "email_from_name": "",
        "online_scheduling_url": "",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return data


def test_admin_refuses_a_taken_number_in_any_form(operator_client, owner):
    response = operator_client.post(
        reverse("admin:trackstat_practice_add"), admin_practice_form(sms_from="(312) 555-0199")
    )

    assert response.status_code == 200  # the form again, with its errors
    assert response.context["adminform"].form.errors["sms_from"] == [TAKEN]
    assert list(Practice.objects.all()) == [owner]


def test_admin_stores_numbers_in_e164(operator_client, owner):
    response = operator_client.post(
        reverse("admin:trackstat_practice_change", args=[owner.pk]),
        admin_practice_form(
            name=owner.name, slug=owner.slug, sms_from="312-555-0177", phone="(312) 555 0100"
        ),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    owner.refresh_from_db()
    assert (owner.sms_from, owner.phone) == ("+13125550177", "+13125550100")


# --- two claims at once ----------------------------------------------------------------------


def _lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # look again, not at a cached view
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_practices_claiming_one_number_at_once_one_gets_the_field_error():
    """Both pass validation (neither sees the other's uncommitted claim); the unique index
    decides, and the loser gets the same field error as if it had come second."""
    first = PracticeFactory(sms_from="")
    second = PracticeFactory(sms_from="")
    admin = MembershipFactory(practice=second, role=Role.ADMINISTRATOR).user
    number = "+13125550142"
    claimed, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def first_claims_and_holds():
        try:
            with transaction.atomic():
                Practice.objects.filter(pk=first.pk).update(sms_from=number)
                claimed.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    def second_claims():
        try:
            practice_settings_update(practice=second, actor=admin, sms_from=number)
            outcome["result"] = "saved"
        except Exception as error:  # the test reports whatever it was
            outcome["result"] = error
        finally:
            connection.close()

    holder = threading.Thread(target=first_claims_and_holds)
    holder.start()
    assert claimed.wait(timeout=30)
    claimant = threading.Thread(target=second_claims)
    claimant.start()
    deadline = time.monotonic() + 30
    while _lock_waiters() == 0 and claimant.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)  # PostgreSQL: the second UPDATE waits on the first's index entry
    release.set()
    holder.join(timeout=30)
    claimant.join(timeout=30)

    error = outcome["result"]
    assert isinstance(error, ValidationError), error
    assert error.message_dict == {"sms_from": [TAKEN]}
    assert Practice.objects.get(pk=first.pk).sms_from == number
    assert Practice.objects.get(pk=second.pk).sms_from == ""


# --- the migration -------------------------------------------------------------------------


def _unique_sender_migration(executor: MigrationExecutor) -> tuple[tuple[str, str], list]:
    """The migration that adds the constraint (found by name, whatever its number) and the
    state just before it."""
    (key,) = [
        key
        for key in executor.loader.disk_migrations
        if key[0] == "trackstat" and key[1].endswith("practice_sms_from_unique")
    ]
    return key, sorted(executor.loader.graph.node_map[key].parents)


@pytest.mark.django_db(transaction=True)
def test_the_migration_refuses_existing_duplicates_naming_them():
    executor = MigrationExecutor(connection)
    migration, before = _unique_sender_migration(executor)
    executor.migrate([parent.key for parent in before])
    try:
        old_apps = (
            MigrationExecutor(connection)
            .loader.project_state([parent.key for parent in before])
            .apps
        )
        OldPractice = old_apps.get_model("trackstat", "Practice")
        main = OldPractice.objects.create(name="Main St", slug="main", sms_from="+13125550199")
        oak = OldPractice.objects.create(name="Oak Clinic", slug="oak", sms_from="+13125550199")
        OldPractice.objects.create(name="Elm", slug="elm", sms_from="+16175550100")
        OldPractice.objects.create(name="Quiet A", slug="quiet-a", sms_from="")
        OldPractice.objects.create(name="Quiet B", slug="quiet-b", sms_from="")
        patient = PatientFactory.build()  # patient data never appears in the message

        with pytest.raises(CommandError) as refused:
            MigrationExecutor(connection).migrate([migration])

        message = str(refused.value)
        assert "+13125550199" in message
        assert f"{main.pk} (Main St)" in message
        assert f"{oak.pk} (Oak Clinic)" in message
        assert "+16175550100" not in message  # not a duplicate
        assert patient.first_name not in message
        assert migration not in MigrationExecutor(connection).loader.applied_migrations

        OldPractice.objects.filter(pk=oak.pk).update(sms_from="")
        MigrationExecutor(connection).migrate([migration])
        assert migration in MigrationExecutor(connection).loader.applied_migrations
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


# --- inbound texts to a number no practice owns --------------------------------------------


def test_inbound_to_a_number_no_practice_owns_is_answered_and_logged_without_phi(
    settings, caplog, owner
):
    settings.TWILIO_AUTH_TOKEN = TOKEN
    caplog.set_level("INFO")
    params = {
        "MessageSid": "SMnobody",
        "From": "+13125550123",
        "To": "+13125550777",
        "Body": "My back hurts since Tuesday",
    }

    response = twilio_post(INBOUND_PATH, params)

    assert response.status_code == 200
    assert response.content.decode() == EMPTY_TWIML
    assert not InboundMessage.objects.exists()
    records = [r for r in caplog.records if "SMnobody" in r.getMessage()]
    assert records, caplog.text
    assert "0777" in records[0].getMessage()  # which of our numbers, to find the routing
    for phi in ("+13125550123", "3125550123", "back hurts"):
        assert phi not in caplog.text
