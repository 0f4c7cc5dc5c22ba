"""Top-level actions declare their transactions (issue 15, move 6): each is one transaction
of its own, durable, so it commits when it returns and can never be folded by mistake into a
caller's larger transaction (Django refuses to nest a durable block)."""

from __future__ import annotations

import pytest
from django.db import transaction

from patients.services import patient_tag_add, patient_tag_remove, patients_tag_bulk
from patients.sync.csv import patients_csv_import
from patients.sync.fhir.importer import fhir_bundle_import
from tests.factories import MembershipFactory, PatientFactory
from trackstat.models import Role
from trackstat.services import (
    api_key_create,
    api_key_revoke,
    membership_change_role,
    membership_invite,
    membership_remove,
    practice_create,
    practice_operator_create,
    practice_operator_update,
    practice_settings_update,
)

pytestmark = pytest.mark.django_db

BUNDLE = {
    "resourceType": "Bundle",
    "type": "batch",
    "entry": [{"resource": {"resourceType": "Patient", "id": "F1", "name": [{"family": "Lee"}]}}],
}


def _actions(practice):
    admin = MembershipFactory(practice=practice, role=Role.ADMINISTRATOR)
    member = MembershipFactory(practice=practice, role=Role.USER)
    patient = PatientFactory(practice=practice)
    key = api_key_create(practice=practice, name="EMR").api_key
    return {
        "practice_create": lambda: practice_create(name="New", time_zone="America/Chicago"),
        "practice_settings_update": lambda: practice_settings_update(
            practice=practice, actor=admin.user, name="Renamed"
        ),
        "practice_operator_create": lambda: practice_operator_create(
            actor=None, name="Made", slug="made", time_zone="America/Chicago"
        ),
        "practice_operator_update": lambda: practice_operator_update(
            practice=practice, actor=None, slug="renamed"
        ),
        "api_key_revoke": lambda: api_key_revoke(
            practice=practice, api_key_id=key.pk, actor=admin.user
        ),
        "membership_invite": lambda: membership_invite(
            practice=practice, email="new@example.test", role=Role.USER, actor=admin.user
        ),
        "membership_change_role": lambda: membership_change_role(
            practice=practice, membership_id=member.pk, role=Role.MANAGER, actor=admin.user
        ),
        "membership_remove": lambda: membership_remove(
            practice=practice, membership_id=member.pk, actor=admin.user
        ),
        "patient_tag_add": lambda: patient_tag_add(
            practice=practice, patient=patient, name="VIP", actor=admin.user
        ),
        "patient_tag_remove": lambda: patient_tag_remove(
            practice=practice, patient=patient, tag_id=0, actor=admin.user
        ),
        "patients_tag_bulk": lambda: patients_tag_bulk(
            practice=practice, name="VIP", external_ids=[patient.external_id], actor=admin.user
        ),
        "patients_csv_import": lambda: patients_csv_import(
            practice=practice, content=b"external_id,first_name\nC1,Ann\n"
        ),
        "fhir_bundle_import": lambda: fhir_bundle_import(practice=practice, bundle=BUNDLE),
    }


ACTIONS = [
    "practice_create",
    "practice_settings_update",
    "practice_operator_create",
    "practice_operator_update",
    "api_key_revoke",
    "membership_invite",
    "membership_change_role",
    "membership_remove",
    "patient_tag_add",
    "patient_tag_remove",
    "patients_tag_bulk",
    "patients_csv_import",
    "fhir_bundle_import",
]


@pytest.mark.parametrize("name", ACTIONS)
def test_a_top_level_action_refuses_to_run_inside_another_transaction(practice, name):
    action = _actions(practice)[name]
    with pytest.raises(RuntimeError, match="durable"), transaction.atomic():
        action()


@pytest.mark.parametrize("name", ACTIONS)
def test_a_top_level_action_runs_on_its_own(practice, name):
    _actions(practice)[name]()
