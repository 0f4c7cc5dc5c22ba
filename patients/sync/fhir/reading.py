"""Reading a FHIR Bundle: its entries, references between them, and elements of unknown shape.

Reading never raises on a resource: a wrong shape is noted as a problem (path, message) that
becomes an error of its entry. Only a bundle that is not a Bundle at all raises
``FhirBundleError``.
"""

from __future__ import annotations

import datetime as dt

from patients.sync.records import MAX_BULK_RECORDS

BUNDLE_TYPES = ("batch", "transaction", "collection")
RESOURCE_TYPES = ("Patient", "Appointment", "Encounter", "Consent")


class FhirBundleError(ValueError):
    """The bundle cannot be imported; ``errors`` is the API's ``{field: [messages]}``."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("The FHIR bundle cannot be imported.")
        self.errors = errors


# Reading resources: a wrong shape is noted as a problem (path, message), never raised.
Problems = list[tuple[str, str]]


def read_objects(value, path: str, problems: Problems) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        problems.append((path, "Must be a list of objects."))
        return []
    return value


def read_object(value, path: str, problems: Problems) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append((path, "Must be an object."))
        return {}
    return value


def read_strings(value, path: str, problems: Problems) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problems.append((path, "Must be a list of strings."))
        return []
    return value


def text_of(value) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def instant_of(value) -> dt.datetime | None:
    """An ISO 8601 date and time with an offset, or None."""
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except (AttributeError, TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else None


def minutes_between(start, end, path: str, problems: Problems) -> int | None:
    start_at, end_at = instant_of(start), instant_of(end)
    if start_at is None:
        return None  # the start's own validation reports it
    if end_at is None:
        problems.append((path, "Must be a date and time with an offset."))
        return None
    if end_at < start_at:
        problems.append((path, "Must not be before the start."))
        return None
    return int((end_at - start_at).total_seconds() // 60)


def external_id_of(resource: dict) -> str | None:
    """The MR identifier's value, else the first identifier's value, else the id."""
    identifiers = resource.get("identifier")
    identifiers = (
        [i for i in identifiers if isinstance(i, dict)] if isinstance(identifiers, list) else []
    )
    for identifier in identifiers:
        identifier_type = identifier.get("type")
        codings = identifier_type.get("coding") if isinstance(identifier_type, dict) else None
        is_mr = isinstance(codings, list) and any(
            isinstance(coding, dict) and coding.get("code") == "MR" for coding in codings
        )
        if is_mr and text_of(identifier.get("value")):
            return text_of(identifier["value"])
    if identifiers and text_of(identifiers[0].get("value")):
        return text_of(identifiers[0]["value"])
    return text_of(resource.get("id"))


class BundleIndex:
    """The bundle's entries by ``fullUrl``, ``Type/id`` and external id, to resolve references."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = {}
        # (type, external id) → entry: ``Appointment/APT-9`` may name the entry whose
        # identifier is APT-9, so that it is not mistaken for a stored appointment.
        self.by_external_id: dict[tuple[str, str], int] = {}
        self.types: dict[int, str] = {}
        self.external_ids: dict[int, str | None] = {}

    def add(self, index: int, entry: dict, resource: dict, problems: Problems) -> None:
        resource_type = resource["resourceType"]
        self.types[index] = resource_type
        self.external_ids[index] = external_id_of(resource)
        full_url = text_of(entry.get("fullUrl"))
        if full_url:
            if full_url in self.keys:
                problems.append(("fullUrl", "Appears on an earlier entry of the bundle."))
            self.keys[full_url] = index
        resource_id = text_of(resource.get("id"))
        if resource_id:
            self.keys.setdefault(f"{resource_type}/{resource_id}", index)
        if self.external_ids[index]:
            self.by_external_id.setdefault((resource_type, self.external_ids[index]), index)

    def resolve(self, reference) -> tuple[str | None, str | None, int | None]:
        """(type, external id, entry index or None when not in the bundle) of a reference.

        The type is None when the reference cannot be read (or is a ``urn:`` matching no
        entry); the external id is None when the entry it names has none.
        """
        reference = text_of(reference)
        if reference is None:
            return None, None, None
        if reference in self.keys:
            index = self.keys[reference]
            return self.types[index], self.external_ids[index], index
        if reference.startswith("urn:"):
            return None, None, None
        parts = reference.split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        if len(parts) < 2 or not parts[-2].isalpha() or not parts[-2][:1].isupper():
            return None, None, None
        resource_type, resource_id = parts[-2], parts[-1].strip()
        if not resource_id:
            return None, None, None
        index = self.keys.get(f"{resource_type}/{resource_id}")
        if index is None or self.types[index] != resource_type:
            index = self.by_external_id.get((resource_type, resource_id))
        if index is not None:
            return resource_type, self.external_ids[index], index
        return resource_type, resource_id, None


def bundle_entries(bundle) -> list:
    """The entries of a bundle; FhirBundleError naming the field if the bundle is malformed."""
    if not isinstance(bundle, dict):
        raise FhirBundleError({"non_field_errors": ["Send a FHIR Bundle as a JSON object."]})
    if bundle.get("resourceType") != "Bundle":
        raise FhirBundleError({"resourceType": ["Must be Bundle."]})
    if bundle.get("type") not in BUNDLE_TYPES:
        raise FhirBundleError({"type": [f"Must be one of: {', '.join(BUNDLE_TYPES)}."]})
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise FhirBundleError({"entry": ["Must be a list of entries."]})
    if len(entries) > MAX_BULK_RECORDS:
        raise FhirBundleError({"entry": [f"At most {MAX_BULK_RECORDS} entries per bundle."]})
    return entries
