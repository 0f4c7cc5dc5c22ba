"""Demo patients, cases and appointments for ``seed_demo``, relative to today.

Deterministic (a fixed random seed and external ids), so running the seed again updates the
same rows rather than adding more. Written through the same sync services the EMR uses.
"""

from __future__ import annotations

import datetime as dt
import random

from django.utils import timezone

from patients.sync.appointments import appointments_upsert
from patients.sync.cases import cases_upsert
from patients.sync.patients import patients_upsert
from trackstat.models import Practice

FIRST = [
    "Ava",
    "Ben",
    "Chloe",
    "Dan",
    "Emma",
    "Finn",
    "Grace",
    "Hugo",
    "Isla",
    "Jack",
    "Kate",
    "Liam",
    "Mia",
    "Noah",
    "Olive",
    "Paul",
    "Quinn",
    "Rosa",
    "Sam",
    "Tess",
]
LAST = [
    "Adams",
    "Brooks",
    "Carter",
    "Diaz",
    "Evans",
    "Fox",
    "Gray",
    "Hill",
    "Ito",
    "Jones",
    "Khan",
    "Lopez",
    "Moore",
    "Nash",
    "Ortiz",
    "Park",
    "Reed",
    "Shaw",
    "Tran",
    "Young",
]
PROVIDERS = ["Dr. Rivera", "Dr. Chen", "Dr. Patel"]
PURPOSES = ["New Patient Exam", "Adjustment", "Re-exam", "Massage"]
CASE_TYPES = ["Personal Injury", "Wellness", "Workers Comp"]
TAGS = ["newsletter", "vip", "not qualified", "moved"]
PATIENTS = 120


def _patients(rng: random.Random, today: dt.date) -> list[dict]:
    records = []
    for n in range(PATIENTS):
        birth = dt.date(rng.randint(1945, 2012), rng.randint(1, 12), rng.randint(1, 28))
        if n < 3:  # a few birthdays today and tomorrow, so birthday campaigns have someone
            birth = birth.replace(month=today.month, day=min(today.day, 28))
        records.append(
            {
                "_index": n,
                "external_id": f"DEMO-{n + 1:04d}",
                "first_name": FIRST[n % len(FIRST)],
                "last_name": LAST[(n * 7) % len(LAST)],
                "birth_date": birth,
                "sex": "MF"[n % 2],
                "phone": f"+1312555{1000 + n:04d}",
                "email": f"patient{n + 1}@demo-patients.test",
                "address": {
                    "line1": f"{100 + n} Oak Street",
                    "city": "Springfield",
                    "state": "IL",
                    "postal_code": "62701",
                },
                "status": "active" if n % 11 else "inactive",
                "primary_provider": PROVIDERS[n % len(PROVIDERS)],
                "referral_source": rng.choice(["Google", "Friend", "Doctor referral"]),
                "insurance_company": rng.choice(["Acme Health", "BlueSky PPO", "Self-pay"]),
                "paid_total": rng.randint(0, 4000),
                "tags": rng.sample(TAGS, rng.choice([0, 0, 1, 2])),
            }
        )
    return records


def demo_data_load(*, practice: Practice) -> dict:
    """Create or refresh the demo patients, cases and appointments of ``practice``."""
    rng = random.Random(2026)  # noqa: S311 - demo data, not security
    tz = practice.tz
    now = timezone.now().astimezone(tz)
    today = now.date()

    def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=tz)

    patients = _patients(rng, today)
    cases, appointments = [], []
    for n, patient in enumerate(patients):
        case_id = f"{patient['external_id']}-C1"
        cases.append(
            {
                "_index": n,
                "external_id": case_id,
                "patient_external_id": patient["external_id"],
                "case_type": CASE_TYPES[n % len(CASE_TYPES)],
                "diagnoses": rng.sample(["M54.5", "M54.2", "S13.4XXA", "M99.01"], 2),
                "status": "open",
            }
        )
        first_visit = today - dt.timedelta(days=rng.randint(1, 900))
        visits = rng.randint(1, 12)
        for v in range(visits):
            day = first_visit + dt.timedelta(days=v * rng.randint(3, 21))
            if day >= today:
                break
            status = rng.choices(["completed", "no_show", "cancelled"], [8, 1, 1])[0]
            appointments.append(
                {
                    "external_id": f"{case_id}-A{v + 1}",
                    "patient_external_id": patient["external_id"],
                    "case_external_id": case_id,
                    "start": at(day, rng.randint(8, 17)),
                    "duration_minutes": 30,
                    "status": status,
                    "purpose": PURPOSES[0] if v == 0 else rng.choice(PURPOSES[1:]),
                    "provider": patient["primary_provider"],
                    "services": ["98940"],
                    "booked_at": at(day - dt.timedelta(days=7), 12),
                }
            )
        if n % 4 == 0:  # upcoming: tomorrow (reminders) or later
            day = today + dt.timedelta(days=1 if n % 8 == 0 else rng.randint(2, 30))
            appointments.append(
                {
                    "external_id": f"{case_id}-NEXT",
                    "patient_external_id": patient["external_id"],
                    "case_external_id": case_id,
                    "start": at(day, rng.randint(8, 17)),
                    "status": "scheduled",
                    "purpose": "Adjustment",
                    "provider": patient["primary_provider"],
                }
            )
        if n % 15 == 1:  # earlier today and not checked in: a missed appointment
            appointments.append(
                {
                    "external_id": f"{case_id}-TODAY",
                    "patient_external_id": patient["external_id"],
                    "case_external_id": case_id,
                    "start": max(at(today, 8), now - dt.timedelta(minutes=45)),
                    "status": "scheduled",
                    "purpose": "Adjustment",
                    "provider": patient["primary_provider"],
                }
            )
    for index, record in enumerate(appointments):
        record["_index"] = index
    patients_upsert(practice=practice, records=patients, actor="seed_demo")
    cases_upsert(practice=practice, records=cases)
    appointments_upsert(practice=practice, records=appointments)
    return {"patients": len(patients), "cases": len(cases), "appointments": len(appointments)}
