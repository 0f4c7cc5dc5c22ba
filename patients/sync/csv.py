"""CSV import of patients: a header row of the §4 field names, one patient per row.

Rows become the same records as the REST API's and go through the same validation and
upsert. An empty cell leaves the stored value as it is (exports often leave cells empty);
``tags`` holds names separated by ``;``.

Per-row results: every row is saved except the rows the answer lists in ``errors`` (by row
number, the header being row 1), whether validation refused them or the database did; a row
is saved whole or not at all. The whole file is one transaction, so the answer is exact: if
the import fails as a whole (a server error), no row of the file is saved.
"""

from __future__ import annotations

import csv
import io

from django.db import transaction

from patients.sync.patients import patients_upsert
from patients.sync.records import PatientRecordSerializer, validate_records
from patients.sync.upsert import UpsertResult
from trackstat.models import Practice

MAX_CSV_ROWS = 50_000
CHUNK = 5_000
ADDRESS_COLUMNS = {
    "address_line1": "line1",
    "address_line2": "line2",
    "city": "city",
    "state": "state",
    "postal_code": "postal_code",
}
# Marketing consent (DESIGN §5.8): the record's ``consent`` object, one column per channel.
CONSENT_COLUMNS = {
    "sms_marketing_consent": "sms_marketing",
    "email_marketing_consent": "email_marketing",
}
PLAIN_COLUMNS = set(PatientRecordSerializer().fields) - {"address", "tags", "consent"}
COLUMNS = PLAIN_COLUMNS | set(ADDRESS_COLUMNS) | set(CONSENT_COLUMNS) | {"tags"}


class CsvFormatError(ValueError):
    """The file as a whole cannot be read; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def _row_to_item(row: dict[str, str]) -> dict:
    item: dict = {}
    address: dict = {}
    consent: dict = {}
    for column, raw in row.items():
        value = (raw or "").strip()
        if not value:
            continue
        if column in CONSENT_COLUMNS:
            consent[CONSENT_COLUMNS[column]] = value
        elif column in ADDRESS_COLUMNS:
            address[ADDRESS_COLUMNS[column]] = value
        elif column == "tags":
            item["tags"] = [name.strip() for name in value.split(";") if name.strip()]
        else:
            item[column] = value
    if address:
        item["address"] = address
    if consent:
        item["consent"] = consent
    return item


def read_patient_rows(content: bytes) -> list[dict]:
    """The rows of a patients CSV as API-shaped items; CsvFormatError for an unusable file."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CsvFormatError("file", "The file is not UTF-8 text.") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    if not header:
        raise CsvFormatError("file", "The file is empty: it needs a header row.")
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        raise CsvFormatError(
            "header", f"Unknown column(s): {', '.join(unknown)}. Use the patient field names."
        )
    if "external_id" not in header:
        raise CsvFormatError("header", "The external_id column is required.")
    if len(set(header)) != len(header):
        raise CsvFormatError("header", "A column appears twice.")
    reader.fieldnames = header
    items = []
    for row in reader:
        if None in row:
            row.pop(None)  # cells beyond the header: ignored
        items.append(_row_to_item(row))
        if len(items) > MAX_CSV_ROWS:
            raise CsvFormatError("file", f"At most {MAX_CSV_ROWS} rows per file.")
    return items


@transaction.atomic(durable=True)
def patients_csv_import(*, practice: Practice, content: bytes, actor=None) -> dict:
    """Import a patients CSV; the result counts rows and lists the rows not saved, by row
    number (see the module docstring). One transaction for the file, written in chunks."""
    items = read_patient_rows(content)
    total = UpsertResult()
    for start in range(0, len(items), CHUNK):
        chunk = items[start : start + CHUNK]
        records, errors = validate_records(PatientRecordSerializer, chunk)
        result = patients_upsert(practice=practice, records=records, actor=actor)
        total.created += result.created
        total.updated += result.updated
        total.unchanged += result.unchanged
        for error in [*errors, *result.errors]:
            index = start + error["index"]
            total.errors.append({**error, "index": index, "row": index + 2})
    return {"rows": len(items), **total.as_response()}
