"""Builders for audience tests: a New York practice whose EMR data goes through the real sync
services (so birth month/day, local dates and visit facts are derived as in production), and
campaigns validated by the campaign serializer."""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo

from campaigns.audience.triggers import RunContext, trigger_audience
from campaigns.language.spec import CampaignSerializer
from campaigns.models import Campaign
from campaigns.selectors import audience
from campaigns.services import campaign_create
from patients.models import Appointment, Case, Patient
from patients.sync.appointments import appointments_upsert
from patients.sync.cases import cases_upsert
from patients.sync.patients import patients_upsert
from tests.factories import PracticeFactory
from trackstat.models import Practice

NY = zoneinfo.ZoneInfo("America/New_York")
UTC = dt.UTC


def ny(year: int, month: int, day: int, hour: int = 12, minute: int = 0, *, fold: int = 0):
    """A wall-clock instant in New York (``fold=1``: the second 01:xx of a fall-back day)."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=NY, fold=fold)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


class Clinic:
    """A practice in America/New_York and its EMR data, written through the sync services."""

    def __init__(self, practice: Practice | None = None):
        self.practice = practice or PracticeFactory(time_zone="America/New_York")
        self._numbers = itertools.count(1)

    def _next(self, prefix: str) -> str:
        return f"{prefix}{next(self._numbers)}"

    def patient(self, external_id: str | None = None, **fields) -> Patient:
        """A patient; ``fields`` are EMR record fields (``birth_date``, ``tags``, ``address``,
        ``primary_provider``, ``status``, …)."""
        external_id = external_id or self._next("P")
        record = {"first_name": "Pat", "last_name": external_id, **fields}
        self._upsert(patients_upsert, [{"external_id": external_id, **record}])
        return Patient.objects.get(practice=self.practice, external_id=external_id)

    def case(self, patient: Patient, case_type: str | None = None, **fields) -> Case:
        external_id = fields.pop("external_id", None) or self._next("C")
        record = {"external_id": external_id, "patient_external_id": patient.external_id}
        if case_type:
            record["case_type"] = case_type
        self._upsert(cases_upsert, [{**record, **fields}])
        return Case.objects.get(practice=self.practice, external_id=external_id)

    def appointment(
        self,
        patient: Patient,
        start: dt.datetime,
        status: str = "scheduled",
        *,
        case: Case | None = None,
        **fields,
    ) -> Appointment:
        """An appointment (a visit when ``status`` is checked_in or completed)."""
        external_id = fields.pop("external_id", None) or self._next("A")
        record = {
            "external_id": external_id,
            "patient_external_id": patient.external_id,
            "start": start,
            "status": status,
            # The EMR's booking time, so no test depends on the wall clock.
            "booked_at": fields.pop("booked_at", start - dt.timedelta(days=30)),
            **fields,
        }
        if case is not None:
            record["case_external_id"] = case.external_id
        self._upsert(appointments_upsert, [record])
        return Appointment.objects.get(practice=self.practice, external_id=external_id)

    def visit(self, patient: Patient, start: dt.datetime, **fields) -> Appointment:
        """A completed visit."""
        return self.appointment(patient, start, fields.pop("status", "completed"), **fields)

    def change(self, appointment: Appointment, **fields) -> Appointment:
        """The EMR changes an appointment (moves, cancels, checks it in)."""
        self._upsert(appointments_upsert, [{"external_id": appointment.external_id, **fields}])
        appointment.refresh_from_db()
        return appointment

    def _upsert(self, service, records: list[dict]) -> None:
        indexed = [{**record, "_index": i} for i, record in enumerate(records)]
        result = service(practice=self.practice, records=indexed)
        assert not result.errors, result.errors

    # --- reading -------------------------------------------------------------------------

    def matched(self, trigger: dict, at: dt.datetime, **kwargs) -> dict[str, str]:
        """external_id → occurrence_key of the patients ``trigger`` matches at ``at``."""
        ctx = RunContext(practice=self.practice, at=at)
        rows = trigger_audience(trigger, ctx, **kwargs).values_list("external_id", "occurrence_key")
        return dict(rows)

    def campaign(
        self,
        trigger: dict | None = None,
        filters: dict | None = None,
        *,
        schedule: dict | None = None,
        kind: str = "drip",
    ) -> Campaign:
        """A campaign created as the API creates one: validated by ``CampaignSerializer``."""
        data: dict = {
            "name": "Test campaign",
            "kind": kind,
            "filters": filters or {},
            "messages": [{"channel": "sms", "body": "Hi {{PatientFirstName}}"}],
        }
        if trigger is not None:
            data["trigger"] = trigger
            data["schedule"] = schedule or {"frequency": "daily", "time": "10:00"}
        serializer = CampaignSerializer(data=data)
        assert serializer.is_valid(), serializer.errors
        return campaign_create(practice=self.practice, data=serializer.validated_data, actor=None)

    def audience_ids(self, campaign: Campaign, at: dt.datetime) -> set[str]:
        return {patient.external_id for patient in audience(campaign, at=at)}
