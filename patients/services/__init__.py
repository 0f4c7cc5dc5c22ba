"""Services that write patients, cases, appointments, tags and opt-outs.

- ``sync``: the EMR's upserts (REST, CSV and FHIR all end here);
- ``visits``: the derived visit facts, recomputed from appointments;
- ``staff``: tags and opt-outs changed by staff or by patients' own replies.
"""

from patients.services.staff import (
    BulkTagResult,
    patient_opt_out_set,
    patient_tag_add,
    patient_tag_remove,
    patients_tag_bulk,
)
from patients.services.sync import (
    UpsertResult,
    appointments_upsert,
    cases_upsert,
    local_date,
    lookups_ensure,
    patients_upsert,
    tags_ensure,
)
from patients.sync.visits import (
    patients_lock,
    practice_local_dates_refresh,
    visit_facts_refresh,
)

__all__ = [
    "BulkTagResult",
    "UpsertResult",
    "appointments_upsert",
    "cases_upsert",
    "local_date",
    "lookups_ensure",
    "patient_opt_out_set",
    "patient_tag_add",
    "patient_tag_remove",
    "patients_lock",
    "patients_tag_bulk",
    "patients_upsert",
    "practice_local_dates_refresh",
    "tags_ensure",
    "visit_facts_refresh",
]
