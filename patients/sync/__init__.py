"""EMR sync (DESIGN §4.1): whatever the EMR sends becomes records, records are validated, and
valid records are written set-wise.

- ``records``: the record format of a patient, case and appointment, and its validation
  (``validate_records``); every way in (REST, CSV, FHIR) produces these records;
- ``patients``, ``cases``, ``appointments``: the upserts, one per record kind, on the shared
  set-wise machinery of ``upsert`` (batches, savepoints, races, per-record errors);
- ``visits``: the derived visit facts of patients and cases, refreshed by the upserts (and by
  a change of the practice's time zone);
- ``csv`` and ``fhir``: the two file formats, turned into records and sent through the same
  validation and upserts. The REST endpoints are ``patients.apis`` and ``patients.fhir_api``.
"""
