"""The filters of DESIGN §5.2, alone and combined with a trigger; ``audience`` stays one query
whatever the number of patients; ``explain`` agrees with ``audience``.

A filter alone is shown by applying its compiled conditions to all of the practice's patients:
one patient in, one out. The filters go through ``validate_filters`` first, as a campaign's do.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.audience.filters import filter_conditions, with_filter_annotations
from campaigns.audience.triggers import RunContext
from campaigns.language.filters import validate_filters
from campaigns.models import Campaign
from campaigns.selectors import audience, explain
from patients.models import Patient
from tests.campaigns.builders import Clinic, ny

pytestmark = pytest.mark.django_db

AT = ny(2026, 6, 15, 10)  # a Monday
DAY = dt.timedelta(days=1)


@pytest.fixture
def clinic():
    return Clinic()


def members(clinic: Clinic, filters: dict, at: dt.datetime = AT) -> set[str]:
    """External ids of the practice's patients that ``filters`` keep at ``at``."""
    ctx = RunContext(practice=clinic.practice, at=at)
    patients = with_filter_annotations(Patient.objects.filter(practice=clinic.practice))
    for _name, condition in filter_conditions(
        validate_filters(filters), ctx, appointment_trigger=False
    ):
        patients = patients.filter(condition)
    return set(patients.values_list("external_id", flat=True))


# --- tags and status ---------------------------------------------------------------------------


def test_tags_include_any_of(clinic):
    clinic.patient("VIP", tags=["VIP"])
    clinic.patient("FAMILY", tags=["Family", "moved"])
    clinic.patient("OTHER_TAG", tags=["Newsletter"])
    clinic.patient("UNTAGGED")
    assert members(clinic, {"tags": {"include": ["VIP"], "exclude": []}}) == {"VIP"}
    assert members(clinic, {"tags": {"include": ["VIP", "Family"]}}) == {"VIP", "FAMILY"}


def test_tags_exclude_none_of(clinic):
    clinic.patient("VIP", tags=["VIP"])
    clinic.patient("MOVED", tags=["Family", "moved"])
    clinic.patient("NOT_QUALIFIED", tags=["not qualified"])
    clinic.patient("UNTAGGED")
    exclude = {"include": [], "exclude": ["moved", "not qualified"]}
    assert members(clinic, {"tags": exclude}) == {"VIP", "UNTAGGED"}
    both = {"include": ["VIP", "Family"], "exclude": ["moved"]}
    assert members(clinic, {"tags": both}) == {"VIP"}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("active", {"ACTIVE"}),
        # Deceased and discharged patients count as inactive.
        ("inactive", {"INACTIVE", "DECEASED", "DISCHARGED"}),
        ("any", {"ACTIVE", "INACTIVE", "DECEASED", "DISCHARGED"}),
    ],
)
def test_status(clinic, status, expected):
    for value in ("active", "inactive", "deceased", "discharged"):
        clinic.patient(value.upper(), status=value)
    assert members(clinic, {"status": status}) == expected


# --- appointments ------------------------------------------------------------------------------


def test_has_future_appointment(clinic):
    clinic.appointment(clinic.patient("TOMORROW"), ny(2026, 6, 16, 9))
    clinic.appointment(clinic.patient("LATER_TODAY"), ny(2026, 6, 15, 15), "confirmed")
    clinic.appointment(clinic.patient("CANCELLED_FUTURE"), ny(2026, 6, 16, 9), "cancelled")
    clinic.appointment(clinic.patient("RESCHEDULED_FUTURE"), ny(2026, 6, 16, 9), "rescheduled")
    clinic.appointment(clinic.patient("STARTED"), ny(2026, 6, 15, 9, 59))
    clinic.visit(clinic.patient("PAST_VISIT"), ny(2026, 6, 1, 9))
    clinic.patient("NO_APPOINTMENTS")
    with_future = {"TOMORROW", "LATER_TODAY"}
    everyone = with_future | {
        "CANCELLED_FUTURE",
        "RESCHEDULED_FUTURE",
        "STARTED",
        "PAST_VISIT",
        "NO_APPOINTMENTS",
    }
    assert members(clinic, {"has_future_appointment": True}) == with_future
    assert members(clinic, {"has_future_appointment": False}) == everyone - with_future
    # Once tomorrow's appointment has started it is no longer in the future.
    assert members(clinic, {"has_future_appointment": True}, at=ny(2026, 6, 16, 9)) == set()


def test_appointment_purposes_without_an_appointment_trigger(clinic):
    clinic.visit(clinic.patient("ADJUSTMENT"), ny(2026, 5, 1, 9), purpose="Adjustment")
    clinic.visit(clinic.patient("MASSAGE"), ny(2026, 5, 1, 9), purpose="Massage")
    clinic.patient("NO_APPOINTMENTS")
    assert members(clinic, {"appointment_purposes": ["Adjustment"]}) == {"ADJUSTMENT"}
    assert members(clinic, {"appointment_purposes": ["Adjustment", "Massage"]}) == {
        "ADJUSTMENT",
        "MASSAGE",
    }


def test_providers_match_appointment_or_primary(clinic):
    seen_by_ames = clinic.patient("SEEN_BY_AMES", primary_provider="Dr. Bell")
    clinic.visit(seen_by_ames, ny(2026, 5, 1, 9), provider="Dr. Ames")
    ames_primary = clinic.patient("AMES_PRIMARY", primary_provider="Dr. Ames")
    clinic.visit(ames_primary, ny(2026, 5, 1, 9), provider="Dr. Bell")
    names = ["Dr. Ames"]
    assert members(clinic, {"providers": {"names": names, "match": "appointment"}}) == {
        "SEEN_BY_AMES"
    }
    assert members(clinic, {"providers": names}) == {"SEEN_BY_AMES"}  # the short form
    assert members(clinic, {"providers": {"names": names, "match": "primary"}}) == {"AMES_PRIMARY"}


def test_appointment_filters_narrow_the_triggering_appointment_of_a_missed_appointment(clinic):
    trigger = {"type": "missed_appointment", "minutes_after": 15}
    adjustment = clinic.appointment(
        clinic.patient("MISSED_ADJUSTMENT"), ny(2026, 6, 15, 9), purpose="Adjustment"
    )
    # Missed a massage today; an adjustment last week does not make it an adjustment.
    massage_only = clinic.patient("MISSED_MASSAGE")
    clinic.appointment(massage_only, ny(2026, 6, 15, 9), purpose="Massage")
    clinic.visit(massage_only, ny(2026, 6, 8, 9), purpose="Adjustment")
    # Missed both: the adjustment is the occurrence, though the massage came first.
    both = clinic.patient("MISSED_BOTH")
    clinic.appointment(both, ny(2026, 6, 15, 8), purpose="Massage")
    both_adjustment = clinic.appointment(both, ny(2026, 6, 15, 9), purpose="Adjustment")
    campaign = clinic.campaign(trigger, {"appointment_purposes": ["Adjustment"]})
    entering = {p.external_id: p for p in audience(campaign, at=AT)}
    assert set(entering) == {"MISSED_ADJUSTMENT", "MISSED_BOTH"}
    assert entering["MISSED_ADJUSTMENT"].trigger_appointment_id == adjustment.pk
    assert entering["MISSED_BOTH"].trigger_appointment_id == both_adjustment.pk
    assert entering["MISSED_BOTH"].occurrence_key == f"appointment:{both_adjustment.pk}"


def test_a_patient_with_two_matching_appointments_enters_a_campaign_once(clinic):
    trigger = {"type": "missed_appointment", "minutes_after": 15}
    patient = clinic.patient("MISSED_TWICE")
    first = clinic.appointment(patient, ny(2026, 6, 15, 8), purpose="Adjustment")
    clinic.appointment(patient, ny(2026, 6, 15, 9), purpose="Adjustment")
    campaign = clinic.campaign(trigger, {"appointment_purposes": ["Adjustment"]})
    entering = list(audience(campaign, at=AT))
    assert [p.external_id for p in entering] == ["MISSED_TWICE"]
    assert entering[0].occurrence_key == f"appointment:{first.pk}"


def test_providers_narrow_the_triggering_appointment_of_a_reminder(clinic):
    trigger = {"type": "scheduled_appointment", "when": "days_before", "days": 1}
    with_ames = clinic.patient("WITH_AMES", primary_provider="Dr. Bell")
    clinic.appointment(with_ames, ny(2026, 6, 16, 9), provider="Dr. Ames")
    with_bell = clinic.patient("WITH_BELL", primary_provider="Dr. Ames")
    clinic.appointment(with_bell, ny(2026, 6, 16, 9), provider="Dr. Bell")
    clinic.appointment(with_bell, ny(2026, 6, 30, 9), provider="Dr. Ames")  # not tomorrow
    by_appointment = clinic.campaign(
        trigger, {"providers": {"names": ["Dr. Ames"], "match": "appointment"}}
    )
    by_primary = clinic.campaign(
        trigger, {"providers": {"names": ["Dr. Ames"], "match": "primary"}}
    )
    assert clinic.audience_ids(by_appointment, AT) == {"WITH_AMES"}
    assert clinic.audience_ids(by_primary, AT) == {"WITH_BELL"}


def test_appointment_purposes_narrow_the_triggering_visit(clinic):
    trigger = {"type": "last_visit_checked_in", "when": "yesterday"}
    clinic.visit(clinic.patient("ADJUSTED_YESTERDAY"), ny(2026, 6, 14, 9), purpose="Adjustment")
    massage = clinic.patient("MASSAGE_YESTERDAY")
    clinic.visit(massage, ny(2026, 6, 1, 9), purpose="Adjustment")
    clinic.visit(massage, ny(2026, 6, 14, 9), purpose="Massage")
    campaign = clinic.campaign(trigger, {"appointment_purposes": ["Adjustment"]})
    assert clinic.audience_ids(campaign, AT) == {"ADJUSTED_YESTERDAY"}


def test_services(clinic):
    clinic.visit(clinic.patient("ADJUSTED"), ny(2026, 5, 1, 9), services=["98940", "97012"])
    clinic.visit(clinic.patient("EXERCISES"), ny(2026, 5, 1, 9), services=["97110"])
    clinic.patient("NO_APPOINTMENTS")
    assert members(clinic, {"services": ["98940"]}) == {"ADJUSTED"}
    assert members(clinic, {"services": ["98941", "97110"]}) == {"EXERCISES"}


def test_visit_count(clinic):
    for count in (0, 2, 3, 4):
        patient = clinic.patient(f"VISITS_{count}")
        for week in range(count):
            clinic.visit(patient, ny(2026, 5, 1 + 7 * week, 9))
        # Appointments that were not visits do not count.
        clinic.appointment(patient, ny(2026, 5, 2, 9), "no_show")
        clinic.appointment(patient, ny(2026, 5, 3, 9), "cancelled")
        clinic.appointment(patient, ny(2026, 6, 20, 9), "scheduled")
    assert members(clinic, {"visit_count": {"eq": 3}}) == {"VISITS_3"}
    assert members(clinic, {"visit_count": {"eq": 0}}) == {"VISITS_0"}
    assert members(clinic, {"visit_count": {"min": 3}}) == {"VISITS_3", "VISITS_4"}
    assert members(clinic, {"visit_count": {"max": 2}}) == {"VISITS_0", "VISITS_2"}
    assert members(clinic, {"visit_count": {"min": 2, "max": 3}}) == {"VISITS_2", "VISITS_3"}


# --- cases -------------------------------------------------------------------------------------


def test_case_types(clinic):
    clinic.case(clinic.patient("INJURY"), "Personal Injury")
    clinic.case(clinic.patient("WELLNESS"), "Wellness")
    clinic.patient("NO_CASE")
    assert members(clinic, {"case_types": ["Personal Injury"]}) == {"INJURY"}
    assert members(clinic, {"case_types": ["Personal Injury", "Wellness"]}) == {
        "INJURY",
        "WELLNESS",
    }


def test_diagnoses(clinic):
    clinic.case(clinic.patient("LOW_BACK"), "Wellness", diagnoses=["M54.5", "M99.03"])
    clinic.case(clinic.patient("WHIPLASH"), "Personal Injury", diagnoses=["S13.4XXA"])
    clinic.case(clinic.patient("NO_DIAGNOSIS"), "Wellness")
    assert members(clinic, {"diagnoses": ["M54.5"]}) == {"LOW_BACK"}
    assert members(clinic, {"diagnoses": ["S13.4XXA", "M99.03"]}) == {"LOW_BACK", "WHIPLASH"}


@pytest.mark.parametrize(
    ("filter_name", "field"),
    [("attorneys", "attorney"), ("insurance_companies", "insurance_company")],
)
def test_attorneys_and_insurance_companies_on_the_patient_or_a_case(clinic, filter_name, field):
    clinic.patient("ON_PATIENT", **{field: "Smith & Co"})
    clinic.case(clinic.patient("ON_CASE"), "Personal Injury", **{field: "Smith & Co"})
    clinic.patient("OTHER", **{field: "Jones LLP"})
    clinic.case(clinic.patient("OTHER_CASE"), "Personal Injury", **{field: "Jones LLP"})
    clinic.patient("NONE")
    assert members(clinic, {filter_name: ["Smith & Co"]}) == {"ON_PATIENT", "ON_CASE"}


@pytest.mark.parametrize(
    ("filter_name", "field"),
    [
        ("care_packages", "care_package"),
        ("fee_schedules", "fee_schedule"),
        ("referral_sources", "referral_source"),
    ],
)
def test_patient_lookups(clinic, filter_name, field):
    clinic.patient("GOLD", **{field: "Gold"})
    clinic.patient("SILVER", **{field: "Silver"})
    clinic.patient("NONE")
    assert members(clinic, {filter_name: ["Gold"]}) == {"GOLD"}
    assert members(clinic, {filter_name: ["Gold", "Silver"]}) == {"GOLD", "SILVER"}


# --- the patient's own fields ------------------------------------------------------------------


def test_paid_total(clinic):
    for amount in ("99.99", "100.00", "500.00", "500.01"):
        clinic.patient(f"PAID_{amount}", paid_total=Decimal(amount))
    assert members(clinic, {"paid_total": {"min": 100}}) == {
        "PAID_100.00",
        "PAID_500.00",
        "PAID_500.01",
    }
    assert members(clinic, {"paid_total": {"max": 500}}) == {
        "PAID_99.99",
        "PAID_100.00",
        "PAID_500.00",
    }
    assert members(clinic, {"paid_total": {"min": 100, "max": 500}}) == {
        "PAID_100.00",
        "PAID_500.00",
    }
    assert members(clinic, {"paid_total": {"min": 99.99, "max": 99.99}}) == {"PAID_99.99"}


def test_age_in_whole_years_on_the_local_run_date(clinic):
    clinic.patient("TURNS_18_TODAY", birth_date=dt.date(2008, 6, 15))
    clinic.patient("TURNS_18_TOMORROW", birth_date=dt.date(2008, 6, 16))
    clinic.patient("TURNS_65_TODAY", birth_date=dt.date(1961, 6, 15))
    clinic.patient("TURNS_65_TOMORROW", birth_date=dt.date(1961, 6, 16))
    clinic.patient("NO_BIRTH_DATE")
    adults = {"age": {"min": 18}}
    under_65 = {"age": {"max": 64}}
    assert members(clinic, adults) == {"TURNS_18_TODAY", "TURNS_65_TODAY", "TURNS_65_TOMORROW"}
    assert members(clinic, under_65) == {"TURNS_18_TODAY", "TURNS_18_TOMORROW", "TURNS_65_TOMORROW"}
    assert members(clinic, {"age": {"min": 18, "max": 64}}) == {
        "TURNS_18_TODAY",
        "TURNS_65_TOMORROW",
    }
    # The local date decides: 23:30 on 14 June in New York is 15 June in UTC.
    eve = ny(2026, 6, 14, 23, 30)
    assert members(clinic, adults, at=eve) == {"TURNS_65_TODAY", "TURNS_65_TOMORROW"}
    assert members(clinic, under_65, at=eve) == {
        "TURNS_18_TODAY",
        "TURNS_18_TOMORROW",
        "TURNS_65_TODAY",
        "TURNS_65_TOMORROW",
    }


@pytest.mark.parametrize(
    ("day", "eighteen", "sixteen"),
    [
        (dt.date(2028, 2, 28), {"BORN_2010_02_28"}, set()),
        (dt.date(2028, 2, 29), {"BORN_2010_02_28"}, {"LEAP_DAY_2012"}),
        (dt.date(2028, 3, 1), {"BORN_2010_02_28", "BORN_2010_03_01"}, {"LEAP_DAY_2012"}),
    ],
)
def test_age_in_a_leap_year(clinic, day, eighteen, sixteen):
    clinic.patient("BORN_2010_02_28", birth_date=dt.date(2010, 2, 28))
    clinic.patient("BORN_2010_03_01", birth_date=dt.date(2010, 3, 1))
    clinic.patient("LEAP_DAY_2012", birth_date=dt.date(2012, 2, 29))
    at = ny(day.year, day.month, day.day, 10)
    assert members(clinic, {"age": {"min": 18, "max": 18}}, at=at) == eighteen
    assert members(clinic, {"age": {"min": 16, "max": 16}}, at=at) == sixteen


@pytest.mark.parametrize(
    ("day", "eighteen"),
    [
        (dt.date(2026, 2, 27), set()),
        # 29 February birthdays fall on 28 February in a common year (as for the birthday
        # trigger): that is when a leap-day baby turns 18.
        (dt.date(2026, 2, 28), {"BORN_2008_02_28", "LEAP_DAY_2008"}),
        (dt.date(2026, 3, 1), {"BORN_2008_02_28", "LEAP_DAY_2008", "BORN_2008_03_01"}),
    ],
)
def test_age_of_a_leap_day_baby_in_a_common_year(clinic, day, eighteen):
    clinic.patient("BORN_2008_02_28", birth_date=dt.date(2008, 2, 28))
    clinic.patient("LEAP_DAY_2008", birth_date=dt.date(2008, 2, 29))
    clinic.patient("BORN_2008_03_01", birth_date=dt.date(2008, 3, 1))
    at = ny(day.year, day.month, day.day, 10)
    assert members(clinic, {"age": {"min": 18}}, at=at) == eighteen
    assert (
        members(clinic, {"age": {"max": 17}}, at=at)
        == {
            "BORN_2008_02_28",
            "LEAP_DAY_2008",
            "BORN_2008_03_01",
        }
        - eighteen
    )


def test_an_18th_birthday_campaign_greets_a_leap_day_baby_in_a_common_year(clinic):
    clinic.patient("LEAP_DAY_2008", birth_date=dt.date(2008, 2, 29))
    clinic.patient("LEAP_DAY_2004", birth_date=dt.date(2004, 2, 29))
    campaign = clinic.campaign(
        {"type": "birthday", "offset_days": 0}, {"age": {"min": 18, "max": 18}}
    )
    assert clinic.audience_ids(campaign, ny(2026, 2, 28, 10)) == {"LEAP_DAY_2008"}
    assert clinic.audience_ids(campaign, ny(2026, 3, 1, 10)) == set()


def test_sex(clinic):
    for sex in ("F", "M", "X", "U"):
        clinic.patient(f"SEX_{sex}", sex=sex)
    assert members(clinic, {"sex": ["F"]}) == {"SEX_F"}
    assert members(clinic, {"sex": ["M", "X"]}) == {"SEX_M", "SEX_X"}


def test_address(clinic):
    clinic.patient("MANHATTAN", address={"city": "New York", "state": "NY", "postal_code": "10001"})
    clinic.patient("BROOKLYN", address={"city": "Brooklyn", "state": "ny", "postal_code": "11201"})
    clinic.patient("NEWARK", address={"city": "NEWARK", "state": "NJ", "postal_code": "07102"})
    clinic.patient("NO_ADDRESS")
    assert members(clinic, {"address": {"states": ["Ny"]}}) == {"MANHATTAN", "BROOKLYN"}
    assert members(clinic, {"address": {"cities": ["new york"]}}) == {"MANHATTAN"}
    assert members(clinic, {"address": {"cities": ["Newark", "BROOKLYN"]}}) == {
        "NEWARK",
        "BROOKLYN",
    }
    assert members(clinic, {"address": {"postal_codes": ["07102"]}}) == {"NEWARK"}
    assert members(clinic, {"address": {"postal_codes": ["7102"]}}) == set()
    assert members(clinic, {"address": {"states": ["NJ"], "cities": ["New York"]}}) == set()


# --- combined ----------------------------------------------------------------------------------


def test_birthday_with_several_filters(clinic):
    trigger = {"type": "birthday", "offset_days": 0}
    birthday = dt.date(1980, 6, 15)
    clinic.patient("ENTERS", birth_date=birthday, tags=["VIP"], address={"state": "NY"})
    clinic.patient("NOT_TODAY", birth_date=dt.date(1980, 6, 16), address={"state": "NY"})
    clinic.patient("INACTIVE", birth_date=birthday, status="inactive", address={"state": "NY"})
    clinic.patient("MOVED", birth_date=birthday, tags=["moved"], address={"state": "NY"})
    clinic.patient("CHILD", birth_date=dt.date(2016, 6, 15), address={"state": "NY"})
    clinic.patient("NEW_JERSEY", birth_date=birthday, address={"state": "NJ"})
    booked = clinic.patient("BOOKED", birth_date=birthday, address={"state": "NY"})
    clinic.appointment(booked, ny(2026, 6, 20, 9))
    filters = {
        "status": "active",
        "tags": {"include": [], "exclude": ["moved"]},
        "age": {"min": 18},
        "address": {"states": ["NY"]},
        "has_future_appointment": False,
    }
    campaign = clinic.campaign(trigger, filters)
    assert clinic.audience_ids(campaign, AT) == {"ENTERS"}
    # Without the filters every birthday patient enters.
    everyone = clinic.campaign(trigger)
    assert clinic.audience_ids(everyone, AT) == {
        "ENTERS",
        "INACTIVE",
        "MOVED",
        "CHILD",
        "NEW_JERSEY",
        "BOOKED",
    }


def test_reactivation_with_case_types_and_filters(clinic):
    trigger = {
        "type": "last_visit_checked_in",
        "when": "days_ago",
        "days": 180,
        "match": "at_least",
    }

    def lapsed_injury_patient(external_id: str, **fields):
        patient = clinic.patient(external_id, **fields)
        injury = clinic.case(patient, "Personal Injury")
        wellness = clinic.case(patient, "Wellness")
        clinic.visit(patient, AT - 200 * DAY, case=injury)
        clinic.visit(patient, AT - 10 * DAY, case=wellness)
        return patient

    lapsed_injury_patient("ENTERS")
    lapsed_injury_patient("NOT_QUALIFIED", tags=["not qualified"])
    rebooked = lapsed_injury_patient("REBOOKED")
    clinic.appointment(rebooked, AT + 3 * DAY)
    wellness_only = clinic.patient("WELLNESS_LAPSED")
    clinic.visit(wellness_only, AT - 200 * DAY, case=clinic.case(wellness_only, "Wellness"))
    filters = {
        "case_types": ["Personal Injury"],
        "has_future_appointment": False,
        "status": "active",
        "tags": {"include": [], "exclude": ["moved", "not qualified"]},
    }
    campaign = clinic.campaign(trigger, filters)
    assert clinic.audience_ids(campaign, AT) == {"ENTERS"}
    no_case_types = clinic.campaign(trigger, {**filters, "case_types": []})
    assert clinic.audience_ids(no_case_types, AT) == {"ENTERS", "WELLNESS_LAPSED"}
    wellness = clinic.campaign(trigger, {**filters, "case_types": ["Wellness"]})
    assert clinic.audience_ids(wellness, AT) == {"WELLNESS_LAPSED"}


def test_filters_only_ever_narrow(clinic):
    clinic.patient("A", status="active", tags=["VIP"], sex="F")
    clinic.patient("B", status="inactive", sex="M")
    assert members(clinic, {}) == {"A", "B"}
    assert members(clinic, {"status": "any", "tags": {"include": [], "exclude": []}}) == {"A", "B"}


# --- the audience is one query -----------------------------------------------------------------

QUERY_COUNT_CAMPAIGNS = {
    "birthday": (
        {"type": "birthday", "offset_days": 0},
        {
            "status": "active",
            "tags": {"include": [], "exclude": ["moved"]},
            "age": {"min": 18},
            "address": {"states": ["NY"]},
            "has_future_appointment": False,
        },
    ),
    "reactivation": (
        {"type": "last_visit_checked_in", "when": "days_ago", "days": 180, "match": "at_least"},
        {
            "case_types": ["Personal Injury"],
            "has_future_appointment": False,
            "status": "active",
            "tags": {"include": [], "exclude": ["moved", "not qualified"]},
            "providers": {"names": ["Dr. Ames"], "match": "primary"},
            "diagnoses": ["M54.5"],
        },
    ),
    "missed_appointment": (
        {"type": "missed_appointment", "minutes_after": 30},
        {
            "has_future_appointment": False,
            "appointment_purposes": ["Adjustment"],
            "providers": {"names": ["Dr. Ames"], "match": "appointment"},
            "status": "active",
            "visit_count": {"min": 1},
            "services": ["98940"],
            "paid_total": {"min": 10},
        },
    ),
}


def add_patients_matching_every_campaign(clinic: Clinic, first: int, count: int) -> None:
    for number in range(first, first + count):
        patient = clinic.patient(
            f"P{number:03d}",
            birth_date=dt.date(1970 + number % 30, 6, 15),
            address={"state": "NY", "city": "Albany"},
            primary_provider="Dr. Ames",
            paid_total="120.00",
            tags=["VIP"],
        )
        injury = clinic.case(patient, "Personal Injury", diagnoses=["M54.5"])
        clinic.visit(patient, AT - 200 * DAY, case=injury, purpose="Adjustment")
        clinic.appointment(
            patient,
            ny(2026, 6, 15, 9),
            purpose="Adjustment",
            provider="Dr. Ames",
            services=["98940"],
        )


@pytest.mark.parametrize("name", list(QUERY_COUNT_CAMPAIGNS))
def test_audience_query_count_does_not_grow_with_patients(clinic, django_assert_num_queries, name):
    trigger, filters = QUERY_COUNT_CAMPAIGNS[name]
    # Loaded as the engine loads it: with its practice.
    campaign = Campaign.objects.select_related("practice").get(
        pk=clinic.campaign(trigger, filters).pk
    )
    add_patients_matching_every_campaign(clinic, 0, 3)
    with CaptureQueriesContext(connection) as small:
        assert len(list(audience(campaign, at=AT))) == 3
    assert len(small.captured_queries) == 1  # one SQL query, whatever the filters
    add_patients_matching_every_campaign(clinic, 3, 57)
    with django_assert_num_queries(len(small.captured_queries)):
        assert len(list(audience(campaign, at=AT))) == 60


# --- explain agrees with audience --------------------------------------------------------------


def failing(verdict: dict) -> list[str]:
    return [check["check"] for check in verdict["checks"] if not check["passed"]]


def test_explain_agrees_with_audience_for_a_birthday_campaign(clinic):
    birthday = dt.date(1980, 6, 15)
    patients = {
        "enters": clinic.patient("ENTERS", birth_date=birthday),
        "not_today": clinic.patient("NOT_TODAY", birth_date=dt.date(1980, 6, 16)),
        "moved": clinic.patient("MOVED", birth_date=birthday, tags=["moved"]),
        "inactive": clinic.patient("INACTIVE", birth_date=birthday, status="discharged"),
    }
    campaign = clinic.campaign(
        {"type": "birthday", "offset_days": 0},
        {"status": "active", "tags": {"include": [], "exclude": ["moved"]}},
    )
    entering = clinic.audience_ids(campaign, AT)
    assert entering == {"ENTERS"}
    verdicts = {name: explain(campaign, p, at=AT) for name, p in patients.items()}
    for name, patient in patients.items():
        assert verdicts[name]["would_enter"] == (patient.external_id in entering), name
    assert verdicts["enters"]["occurrence_key"] == "birthday:2026"
    assert failing(verdicts["enters"]) == []
    assert failing(verdicts["not_today"]) == ["trigger: birthday"]
    assert verdicts["not_today"]["occurrence_key"] is None
    assert failing(verdicts["moved"]) == ["filter: Has none of the excluded tags"]
    assert failing(verdicts["inactive"]) == ["filter: Status"]
    assert verdicts["enters"]["local_date"] == "2026-06-15"


def test_explain_agrees_with_audience_for_a_reactivation_campaign(clinic):
    trigger = {
        "type": "last_visit_checked_in",
        "when": "days_ago",
        "days": 180,
        "match": "at_least",
    }
    lapsed = clinic.patient("LAPSED")
    lapsed_visit = clinic.visit(lapsed, AT - 200 * DAY)
    recent = clinic.patient("RECENT")
    clinic.visit(recent, AT - 20 * DAY)
    rebooked = clinic.patient("REBOOKED")
    clinic.visit(rebooked, AT - 200 * DAY)
    clinic.appointment(rebooked, AT + 2 * DAY)
    campaign = clinic.campaign(trigger, {"has_future_appointment": False})
    entering = clinic.audience_ids(campaign, AT)
    assert entering == {"LAPSED"}
    for patient in (lapsed, recent, rebooked):
        verdict = explain(campaign, patient, at=AT)
        assert verdict["would_enter"] == (patient.external_id in entering)
    assert explain(campaign, lapsed, at=AT)["occurrence_key"] == f"appointment:{lapsed_visit.pk}"
    assert failing(explain(campaign, recent, at=AT)) == ["trigger: last_visit_checked_in"]
    assert failing(explain(campaign, rebooked, at=AT)) == ["filter: Has a future appointment"]
