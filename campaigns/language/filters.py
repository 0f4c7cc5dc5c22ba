"""The filter vocabulary (DESIGN §5.2) and its validation.

Absent filters do not narrow; lists mean "any of". The names, the lookup kinds their values
come from and their labels are here, for the validation, the wizard's filter form, explain and
the campaign in staff's words; the filters compile to SQL in ``campaigns.audience.filters``.
"""

from __future__ import annotations

from rest_framework import serializers

from campaigns.language.checks import name_list, number_range, one_of, whole_number
from patients.models import Confirmation, LookupKind, Tag
from trackstat.validators import max_length_of

TAG_NAME_LENGTH = max_length_of(Tag, "name")

# Filters chosen from the practice's lookup values (DESIGN §4: a value exists once the EMR sent
# it): filter name → (lookup kind, label).
LOOKUP_FILTERS = {
    "appointment_purposes": (LookupKind.PURPOSE, "Appointment purposes"),
    "providers": (LookupKind.PROVIDER, "Providers"),
    "case_types": (LookupKind.CASE_TYPE, "Case types"),
    "diagnoses": (LookupKind.DIAGNOSIS, "Diagnoses (ICD-10)"),
    "attorneys": (LookupKind.ATTORNEY, "Attorneys"),
    "care_packages": (LookupKind.CARE_PACKAGE, "Care packages"),
    "fee_schedules": (LookupKind.FEE_SCHEDULE, "Fee schedules"),
    "insurance_companies": (LookupKind.INSURANCE_COMPANY, "Insurance companies"),
    "referral_sources": (LookupKind.REFERRAL_SOURCE, "Referral sources"),
    "services": (LookupKind.SERVICE, "Services (CPT codes on any appointment)"),
}
# The lookup filters that are plain lists of names (``providers`` also says whose provider).
LIST_FILTERS = [
    "appointment_purposes",
    "case_types",
    "diagnoses",
    "attorneys",
    "care_packages",
    "fee_schedules",
    "insurance_companies",
    "referral_sources",
    "services",
]
FILTER_NAMES = [
    "tags",
    "status",
    "has_future_appointment",
    "providers",
    "appointment_confirmations",
    *LIST_FILTERS,
    "paid_total",
    "age",
    "sex",
    "address",
    "visit_count",
]
# The filters about an appointment: they narrow the triggering appointment when the trigger
# has one, and otherwise ask for any appointment of the patient.
APPOINTMENT_FILTERS = ("appointment_purposes", "providers", "appointment_confirmations")
# Those a future_appointment goal may narrow by.
GOAL_APPOINTMENT_FILTERS = ("appointment_purposes", "providers")

STATUS_CHOICES = [
    ("", "Any status"),
    ("active", "Active"),
    ("inactive", "Inactive (inactive, deceased, discharged)"),
    ("any", "Any status"),
]
# The form offers one "Any status": "any" (an API value) and no status filter are the same.
STATUS_FORM_CHOICES = [choice for choice in STATUS_CHOICES if choice[0] != "any"]
SEX_LABELS = {"M": "Male", "F": "Female", "X": "Other", "U": "Unknown"}
ADDRESS_PARTS = {"states": "States", "cities": "Cities", "postal_codes": "ZIP codes"}

# Each compiled condition (``campaigns.audience.filters.filter_conditions``) as explain names it.
CONDITION_LABELS = {
    "tags.include": "Has one of the tags",
    "tags.exclude": "Has none of the excluded tags",
    "status": "Status",
    "has_future_appointment": "Has a future appointment",
    "appointment": "Has an appointment of the purpose/provider/confirmation",
    "providers": "Primary provider",
    "case_types": "Has a case of the type",
    "diagnoses": "Has a diagnosis",
    "attorneys": "Attorney",
    "insurance_companies": "Insurance company",
    "care_packages": "Care package",
    "fee_schedules": "Fee schedule",
    "referral_sources": "Referral source",
    "services": "Had a service (CPT)",
    "paid_total": "Paid total",
    "age": "Age",
    "sex": "Sex",
    "address": "Address",
    "visit_count": "Visit count",
}


def validate_filters(data) -> dict:
    """The filters of §5.2. Absent filters do not narrow; empty lists are dropped."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise serializers.ValidationError("Expected an object of filters.")
    unknown = sorted(set(data) - set(FILTER_NAMES))
    if unknown:
        raise serializers.ValidationError({name: ["Unknown filter."] for name in unknown})
    clean: dict = {}
    for name, value in data.items():
        if value is None:
            continue
        if name == "tags":
            if not isinstance(value, dict) or set(value) - {"include", "exclude"}:
                raise serializers.ValidationError({"tags": ["An object with include and exclude."]})
            tags = {
                k: name_list(value.get(k, []), "tags", max_length=TAG_NAME_LENGTH)
                for k in ("include", "exclude")
            }
            if tags["include"] or tags["exclude"]:
                clean["tags"] = tags
        elif name == "status":
            clean["status"] = one_of(value, "status", ["active", "inactive", "any"])
        elif name == "has_future_appointment":
            if not isinstance(value, bool):
                raise serializers.ValidationError({name: ["Must be true or false."]})
            clean[name] = value
        elif name == "providers":
            if isinstance(value, list):
                value = {"names": value, "match": "appointment"}
            if not isinstance(value, dict) or set(value) - {"names", "match"}:
                raise serializers.ValidationError(
                    {"providers": ["An object with names and match (appointment or primary)."]}
                )
            names = name_list(value.get("names", []), "providers")
            match = one_of(
                value.get("match", "appointment"), "providers", ["appointment", "primary"]
            )
            if names:
                clean["providers"] = {"names": names, "match": match}
        elif name in LIST_FILTERS:
            names = name_list(value, name)
            if names:
                clean[name] = names
        elif name == "paid_total":
            clean[name] = number_range(value, name, 0, 10**9, decimals=True)
        elif name == "age":
            clean[name] = number_range(value, name, 0, 130)
        elif name == "visit_count":
            if isinstance(value, dict) and "eq" in value:
                if set(value) != {"eq"}:
                    raise serializers.ValidationError({name: ["Use eq alone, or min and/or max."]})
                clean[name] = {"eq": whole_number(value["eq"], name, 0, 100000)}
            else:
                clean[name] = number_range(value, name, 0, 100000)
        elif name == "appointment_confirmations":
            # The appointment's answer to a reminder that asked (DESIGN §7), e.g. remind
            # again only those who have not confirmed: ["none", "requested"].
            if not isinstance(value, list) or set(value) - set(Confirmation.values):
                raise serializers.ValidationError(
                    {name: [f"A list of: {', '.join(Confirmation.values)}."]}
                )
            if value:
                clean[name] = [v for v in Confirmation.values if v in value]
        elif name == "sex":
            if not isinstance(value, list) or not value or set(value) - set(SEX_LABELS):
                raise serializers.ValidationError({"sex": ["A list of M, F, X, U."]})
            clean["sex"] = sorted(set(value))
        elif name == "address":
            if not isinstance(value, dict) or set(value) - set(ADDRESS_PARTS):
                raise serializers.ValidationError(
                    {"address": ["An object with states, cities and/or postal_codes."]}
                )
            address = {k: name_list(v, "address") for k, v in value.items() if v}
            if address:
                clean["address"] = address
    return clean
