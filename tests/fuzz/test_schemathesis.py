"""API fuzzing (issue 9): schemathesis generates requests from ``/api/schema/`` and sends them
in process to the WSGI app, authenticated with the API key of a practice that has data.

Every answer must not be a server error, must carry a status code the schema documents, and
its body must match the schema for that status. Hypothesis is derandomized and bounded so the
run is the same in CI every time and takes a minute or two on two cores.
"""

from __future__ import annotations

import datetime as dt

import hypothesis
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from campaigns.engine import tick
from tests.campaigns.builders import Clinic, ny
from trackstat.services import api_key_create

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
BIRTHDAY = {
    "name": "Happy birthday",
    "trigger": {"type": "birthday", "offset_days": 0},
    "schedule": {"frequency": "daily", "time": "10:00"},
}


@pytest.fixture
def _keep_the_test_connection():
    """The WSGI handler closes the database connection after each request, as in production;
    the test's transaction lives on that connection. Django's own test client does the same."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_practice(db, _keep_the_test_connection):
    """A practice with patients, a case, appointments, a campaign that has sent messages, and
    the API key the fuzzer signs its requests with."""
    clinic = Clinic()
    ann = clinic.patient(
        "ANN", first_name="Ann", birth_date=dt.date(1980, 5, 12), phone="3125550101"
    )
    bob = clinic.patient("BOB", first_name="Bob", email="bob@example.test", tags=["vip"])
    case = clinic.case(ann, external_id="CASE1")
    clinic.appointment(ann, ny(2026, 5, 12, 9), case=case, external_id="APPT1")
    clinic.visit(bob, ny(2026, 4, 1, 9), external_id="APPT2")
    campaign = clinic.campaign(BIRTHDAY["trigger"], schedule=BIRTHDAY["schedule"])
    campaign.enabled = True
    campaign.save(update_fields=["enabled"])
    tick(now=ny(2026, 5, 12, 10, 5), send="inline")
    KNOWN.update(campaign_id=campaign.pk, external_ids=["ANN", "BOB", "CASE1", "APPT1", "APPT2"])
    return api_key_create(practice=clinic.practice, name="Fuzzer").secret


# The schema as the app serves it, fetched in process when the module is collected.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
# The ids of the practice the running test made (filled by ``fuzz_practice``).
KNOWN: dict = {}


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    # Generated ids are nearly always unknown (a 404); most of the time use the practice's own
    # instead, so the fuzzer reaches the code behind the lookup too.
    if not path_parameters or not KNOWN:  # no ids in the path, or examples read at collection
        return st.just(path_parameters)
    choices = [path_parameters]
    if "campaign_id" in path_parameters:
        choices.append({**path_parameters, "campaign_id": KNOWN["campaign_id"]})
    if "external_id" in path_parameters:
        choices += [{**path_parameters, "external_id": e} for e in KNOWN["external_ids"]]
    return st.sampled_from(choices)


@schema.parametrize()
@hypothesis.settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_match_the_schema(case, fuzz_practice):
    case.call_and_validate(headers={"Authorization": f"Api-Key {fuzz_practice}"}, checks=CHECKS)
