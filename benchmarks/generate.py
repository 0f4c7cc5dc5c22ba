"""The benchmark data generator: P practices x N patients with realistic shapes.

Per patient: a birth date 1940-2015, a first visit in the last ten years (sent by the EMR as
``first_visit_date`` when it predates the three years of appointments), about ten
appointments over three years (mostly completed, some no-shows, cancellations and upcoming
ones, and a day's schedule on ``today``), one to three cases of several types with
diagnoses, tags, lookups (providers, insurance, attorneys, …) and opt-outs. Per practice:
ten drip campaigns covering every trigger type and most filters, and a blast, validated by
the campaign serializer (``campaigns.language.spec``): the first practice's set is created through
``campaigns.services.campaign_create`` and copied for the others.

Rows are loaded with PostgreSQL ``COPY`` (psycopg 3 ``cursor.copy``) with the secondary
indexes dropped and rebuilt afterwards and foreign-key triggers off for the load (the rows
are generated consistent). The derived columns are computed here exactly as the app derives
them (``patients.sync`` upserts and ``patients.sync.visits``): birth month and day,
appointment local dates in the practice's zone, and the visit facts of patients and cases;
``tests/test_benchmarks_generate.py`` checks them against the app's own refresh.

    uv run python -m benchmarks.generate --size small|full
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import multiprocessing
import random
import sys
import time
import zoneinfo
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Practices are spread over these zones (in turn).
ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"]
STATES = {
    "America/New_York": [("New York", "NY", "100"), ("Boston", "MA", "021")],
    "America/Chicago": [("Chicago", "IL", "606"), ("Dallas", "TX", "752")],
    "America/Denver": [("Denver", "CO", "802"), ("Phoenix", "AZ", "850")],
    "America/Los_Angeles": [("Seattle", "WA", "981"), ("San Diego", "CA", "921")],
}
# A Tuesday, the 12th: daily, weekly (Tuesday) and monthly (day 12) campaigns are all due.
BENCH_DAY = dt.date(2026, 5, 12)
SIZES = {"tiny": (3, 60), "small": (20, 1000), "full": (200, 5000)}

FIRST = ["Ava", "Ben", "Chloe", "Dan", "Emma", "Finn", "Grace", "Hugo", "Isla", "Jack", "Kate"]
LAST = ["Adams", "Brooks", "Carter", "Diaz", "Evans", "Fox", "Gray", "Hill", "Ito", "Jones"]
LOOKUPS = {
    "provider": ["Dr. Rivera", "Dr. Chen", "Dr. Patel", "Dr. Okafor"],
    "purpose": ["New Patient Exam", "Adjustment", "Re-exam", "Massage"],
    "case_type": ["Personal Injury", "Wellness", "Workers Comp", "Medicare"],
    "diagnosis": ["M54.5", "M54.2", "S13.4XXA", "M99.01", "M54.16", "G44.209"],
    "insurance_company": ["Acme Health", "BlueSky PPO", "Self-pay", "Medicare"],
    "attorney": ["Hale & Ward", "Stone Law", "Brightman LLP"],
    "referral_source": ["Google", "Friend", "Doctor referral", "Facebook"],
    "care_package": ["Wellness plan", "Family plan", "Corrective care"],
    "fee_schedule": ["Standard", "Cash discount", "PI lien"],
    "service": ["98940", "98941", "97140", "97110", "99213"],
}
TAGS = ["newsletter", "vip", "not qualified", "moved", "family", "athlete"]
TAG_WEIGHTS = [0.35, 0.08, 0.04, 0.03, 0.15, 0.07]


def _sms(body: str, value: int = 0, unit: str = "days") -> dict:
    return {"channel": "sms", "body": body, "delay": {"value": value, "unit": unit}}


def _email(subject: str, body: str, value: int = 0, unit: str = "days") -> dict:
    return {
        "channel": "email",
        "subject": subject,
        "body": body,
        "delay": {"value": value, "unit": unit},
    }


UNSUBSCRIBE = '<p><a href="{{UnsubscribeLink}}">Unsubscribe</a></p>'
# Every trigger type, most filters; scheduled ones all run at or before 10:00 local on
# BENCH_DAY. Names are unique within a practice (the copy matches on them).
CAMPAIGNS: list[dict] = [
    {
        "name": "Happy birthday",
        "trigger": {"type": "birthday", "offset_days": 0},
        "filters": {"status": "active", "tags": {"include": [], "exclude": ["moved"]}},
        "schedule": {"frequency": "daily", "time": "09:00"},
        "messages": [_sms("Happy birthday, {{PatientFirstName}}! From {{PracticeName}}.")],
    },
    {
        "name": "New-patient welcome series",
        "trigger": {"type": "first_visit", "days_after": 0},
        "filters": {"referral_sources": ["Google", "Friend", "Doctor referral"]},
        "schedule": {"frequency": "daily", "time": "10:00"},
        "messages": [
            _sms("Welcome to {{PracticeName}}, {{PatientFirstName}}! Call {{PracticePhone}}."),
            _email(
                "How are you feeling, {{PatientFirstName}}?",
                '<p>Book your next visit: <a href="{{OnlineSchedulingLink}}">online</a>.</p>'
                + UNSUBSCRIBE,
                value=3,
            ),
            _sms("Consistency is key! Book: {{OnlineSchedulingLink}}", value=11),
        ],
        "goal": {"type": "future_appointment", "filters": {"appointment_purposes": ["Adjustment"]}},
    },
    {
        "name": "First-visit anniversary",
        "trigger": {"type": "anniversary", "offset_days": 0},
        "filters": {"status": "active", "age": {"min": 18}, "care_packages": ["Wellness plan"]},
        "schedule": {"frequency": "weekly", "weekdays": ["mon", "tue", "wed", "thu", "fri"]}
        | {"time": "09:30"},
        "messages": [
            _email(
                "Happy anniversary, {{PatientFirstName}}",
                "<p>Thank you for trusting {{PracticeName}}.</p>" + UNSUBSCRIBE,
            )
        ],
    },
    {
        "name": "Post-visit check-in (same day)",
        "trigger": {"type": "last_visit_checked_in", "when": "today", "hours_after": 2},
        "filters": {"services": ["98940", "98941"]},
        "messages": [_sms("Hi {{PatientFirstName}}, how are you feeling after today's visit?")],
    },
    {
        "name": "Missed-appointment follow-up",
        "trigger": {"type": "missed_appointment", "minutes_after": 30},
        "filters": {"has_future_appointment": False},
        "messages": [
            _sms("We missed you at {{AppointmentTime}}. Rebook: {{OnlineSchedulingLink}}")
        ],
    },
    {
        "name": "Next-morning soreness check",
        "trigger": {"type": "last_visit_checked_in", "when": "yesterday"},
        "filters": {
            "visit_count": {"min": 2},
            "sex": ["F", "M"],
            "providers": {"names": ["Dr. Rivera", "Dr. Chen", "Dr. Patel"], "match": "primary"},
        },
        "schedule": {"frequency": "daily", "time": "09:00"},
        "messages": [_sms("Good morning {{PatientFirstName}}! A little soreness is normal.")],
    },
    {
        "name": "Reactivation 6 months",
        "trigger": {"type": "last_visit_checked_in", "when": "days_ago", "days": 180}
        | {"match": "exact"},
        "filters": {
            "tags": {"include": [], "exclude": ["not qualified", "moved"]},
            "status": "active",
            "has_future_appointment": False,
            "case_types": ["Personal Injury", "Wellness"],
        },
        "schedule": {"frequency": "daily", "time": "10:00"},
        "exclude_recent_days": 30,
        "messages": [
            _sms("Hi {{PatientFirstName}}, we miss you! Book: {{OnlineSchedulingLink}}"),
            _email("Time for a check-up?", "<p>It's been a while.</p>" + UNSUBSCRIBE, value=3),
        ],
        "goal": {"type": "future_appointment"},
    },
    {
        "name": "No-conversion",
        "trigger": {"type": "last_visit_scheduled", "when": "days_ago", "days": 30}
        | {"match": "exact"},
        "filters": {
            "appointment_purposes": ["New Patient Exam"],
            "has_future_appointment": False,
            "paid_total": {"max": 1000},
        },
        "schedule": {"frequency": "daily", "time": "10:00"},
        "messages": [_sms("Ready to get started, {{PatientFirstName}}? {{OnlineSchedulingLink}}")],
    },
    {
        "name": "Appointment reminder",
        "trigger": {"type": "scheduled_appointment", "when": "days_before", "days": 1},
        "filters": {"providers": {"names": ["Dr. Rivera", "Dr. Chen", "Dr. Patel"]}},
        "schedule": {"frequency": "daily", "time": "09:00"},
        "messages": [
            _sms("Reminder: {{AppointmentDate}} at {{AppointmentTime}} with {{ProviderName}}.")
        ],
    },
    {
        "name": "Lapsed injury cases",
        "trigger": {"type": "last_visit_checked_in", "when": "days_ago", "days": 365}
        | {"match": "at_least"},
        "filters": {
            "attorneys": ["Hale & Ward", "Stone Law"],
            "diagnoses": ["M54.2", "S13.4XXA"],
            "insurance_companies": ["Acme Health", "BlueSky PPO"],
            "fee_schedules": ["PI lien", "Standard"],
            "address": {"states": ["ny", "IL", "CO", "WA", "TX", "MA", "AZ", "CA"]},
        },
        "schedule": {"frequency": "monthly", "day": 12, "time": "08:30"},
        "messages": [
            _sms("Still in pain, {{PatientFirstName}}? {{OnlineSchedulingLink}}"),
            _sms("Book in seconds: {{OnlineSchedulingLink}}", value=7),
        ],
        "goal": {"type": "clicked_link"},
    },
    {
        "name": "Holiday hours",
        "kind": "blast",
        "filters": {"status": "active"},
        "messages": [_sms("{{PracticeName}} is closed Monday for the holiday.")],
    },
]


@dataclass
class Generated:
    practices: int
    patients: int
    cases: int
    appointments: int
    campaigns: int
    seconds: float
    counts: dict


def _offsets(tz: zoneinfo.ZoneInfo, first: dt.date, days: int) -> list[str]:
    """The zone's UTC offset ("-04:00") at midday of each day from ``first``."""
    result = []
    for n in range(days):
        offset = dt.datetime.combine(first + dt.timedelta(days=n), dt.time(12), tz).utcoffset()
        minutes = int(offset.total_seconds()) // 60
        sign = "-" if minutes < 0 else "+"
        result.append(f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}")
    return result


class _Tables:
    """Text-format COPY buffers, one per table."""

    COLUMNS = {
        "patients_patient": (
            "id practice_id external_id first_name last_name birth_date birth_month birth_day "
            "sex phone email address_line1 address_line2 city state postal_code status "
            "emr_first_visit_date primary_provider_id referral_source_id attorney_id "
            "care_package_id fee_schedule_id insurance_company_id paid_total sms_opt_out "
            "sms_opt_out_at sms_opt_out_source email_opt_out email_opt_out_at "
            "email_opt_out_source visit_count first_visit_date first_visit_month "
            "first_visit_day last_visit_checked_in last_visit_scheduled created_at updated_at"
        ),
        "patients_patienttag": "practice_id patient_id tag_id",
        "patients_case": (
            "id practice_id external_id patient_id case_type_id attorney_id "
            "insurance_company_id status visit_count first_visit_date last_visit_checked_in "
            "last_visit_scheduled created_at updated_at"
        ),
        "patients_casediagnosis": "practice_id case_id diagnosis_id",
        "patients_appointment": (
            "id practice_id external_id patient_id case_id start local_date duration_minutes "
            "status checked_in_at purpose_id provider_id booked_at created_at updated_at"
        ),
        "patients_appointmentservice": "practice_id appointment_id service_id",
    }

    def __init__(self):
        self.buffers = {name: io.StringIO() for name in self.COLUMNS}
        self.rows = dict.fromkeys(self.COLUMNS, 0)

    def flush(self, cursor) -> None:
        for name, buffer in self.buffers.items():
            data = buffer.getvalue()
            if data:
                columns = ", ".join(f'"{c}"' for c in self.COLUMNS[name].split())
                with cursor.copy(f"COPY {name} ({columns}) FROM STDIN") as copy:
                    copy.write(data)
            self.buffers[name] = io.StringIO()


def _d(value) -> str:
    return r"\N" if value is None else str(value)


NULL = r"\N"
VISIT = ("checked_in", "completed")
CANCELLED = ("cancelled", "rescheduled")


def _practice_rows(
    tables: _Tables,
    rng: random.Random,
    *,
    practice_id: int,
    tz_name: str,
    patients: int,
    ids: dict,
    lookups: dict,
    tags: dict,
    today: dt.date,
    as_of: dt.datetime,
    stamp: str,
) -> None:
    """Append one practice's patients, cases, appointments and links to the buffers."""
    tz = zoneinfo.ZoneInfo(tz_name)
    window_start = today - dt.timedelta(days=3 * 365)
    horizon = today + dt.timedelta(days=60)
    first_day = window_start - dt.timedelta(days=30)
    span = (horizon - first_day).days + 1
    offsets = _offsets(tz, first_day, span)
    # Days are numbers from first_day below; these give their dates and texts.
    dates = [first_day + dt.timedelta(days=i) for i in range(span)]
    texts = [str(day) for day in dates]
    today_i, window_i, horizon_i = (today - first_day).days, 30, span - 1
    slots = {8 * 60 + 15 * k: f"{8 + k // 4:02d}:{15 * (k % 4):02d}" for k in range(40)}
    local_now = as_of.astimezone(tz)
    now_minutes = local_now.hour * 60 + local_now.minute if local_now.date() == today else None
    places = STATES[tz_name]
    lk = {kind: [lookups[(practice_id, kind, name)] for name in names]
          for kind, names in LOOKUPS.items()}  # fmt: skip
    tag_ids = [tags[(practice_id, name)] for name in TAGS]
    rnd = rng.random

    def randrange(n: int) -> int:
        return int(rnd() * n)

    patient_buf = tables.buffers["patients_patient"]
    tag_buf = tables.buffers["patients_patienttag"]
    case_buf = tables.buffers["patients_case"]
    diag_buf = tables.buffers["patients_casediagnosis"]
    appt_buf = tables.buffers["patients_appointment"]
    service_buf = tables.buffers["patients_appointmentservice"]
    previous_phone = ""
    birth_span = (dt.date(2015, 12, 31) - dt.date(1940, 1, 1)).days + 1
    birth_first = dt.date(1940, 1, 1)

    for n in range(patients):
        ids["patient"] += 1
        patient_id = ids["patient"]
        birth = birth_first + dt.timedelta(days=randrange(birth_span))
        first_visit_i = today_i - randrange(3650)
        emr_first = (
            None if first_visit_i >= window_i else first_day + dt.timedelta(days=first_visit_i)
        )
        start_day = first_visit_i if emr_first is None else window_i + randrange(1060)
        provider = lk["provider"][randrange(4)]
        # Cases: 1 (60 %), 2 (30 %) or 3; appointments are split among them in order.
        case_count = 1 if rnd() < 0.6 else (2 if rnd() < 0.75 else 3)
        case_ids = []
        cases = []
        for c in range(case_count):
            ids["case"] += 1
            case_type = lk["case_type"][randrange(4)]
            attorney = (
                lk["attorney"][randrange(3)]
                if case_type == lk["case_type"][0] and rnd() < 0.4
                else None
            )
            insurance = lk["insurance_company"][randrange(4)] if rnd() < 0.8 else None
            case_ids.append(ids["case"])
            cases.append([ids["case"], c, case_type, attorney, insurance, []])
            for diagnosis in rng.sample(lk["diagnosis"], 1 + (rnd() < 0.4)):
                diag_buf.write(f"{practice_id}\t{ids['case']}\t{diagnosis}\n")
                tables.rows["patients_casediagnosis"] += 1

        appointments = []  # (local_date, status)
        count = 1 + randrange(19)
        day = start_day
        upcoming = 0
        for k in range(count):
            if k:
                day += 3 + randrange(19) + (90 if rnd() < 0.05 else 0)
            if day > horizon_i:
                break
            slot = 8 * 60 + 15 * randrange(40)  # 08:00 … 17:45
            if day < today_i or (
                day == today_i and now_minutes is not None and slot + 30 <= now_minutes
            ):
                r = rnd()
                if k == 0 and emr_first is None and day < today_i:
                    status = "completed"
                elif day == today_i:
                    status = (
                        "completed" if r < 0.7 else "checked_in" if r < 0.85
                        else "scheduled" if r < 0.95 else "cancelled"
                    )  # fmt: skip
                else:
                    status = (
                        "completed" if r < 0.82 else "no_show" if r < 0.88
                        else "cancelled" if r < 0.96 else "rescheduled"
                    )  # fmt: skip
            elif day == today_i and now_minutes is not None and slot <= now_minutes:
                status = "checked_in"
            else:
                if upcoming == 2:
                    break
                upcoming += 1
                r = rnd()
                status = "scheduled" if r < 0.55 else "confirmed" if r < 0.95 else "cancelled"
            appointments.append((day, slot, status))

        # Visit facts, exactly as patients.sync.visits derives them.
        visit_days = [a[0] for a in appointments if a[2] in VISIT]
        kept_days = [a[0] for a in appointments if a[2] not in CANCELLED]
        first_visit_date = emr_first or (dates[min(visit_days)] if visit_days else None)
        per_case = len(appointments) // case_count + 1
        for index, (day, slot, status) in enumerate(appointments):
            ids["appointment"] += 1
            appointment_id = ids["appointment"]
            case = cases[min(index // per_case, case_count - 1)] if rnd() > 0.05 else None
            if case is not None:
                case[5].append((day, status))
            offset, text, hour_minute = offsets[day], texts[day], slots[slot]
            start = f"{text} {hour_minute}:00{offset}"
            checked_in = (
                f"{text} {hour_minute}:02{offset}" if status in VISIT and rnd() < 0.8 else r"\N"
            )
            booked = max(day - 1 - randrange(21), 0)
            booked_at = f"{texts[booked]} 12:00:00{offsets[booked]}"
            purpose = lk["purpose"][0] if index == 0 else lk["purpose"][1 + randrange(3)]
            appt_provider = provider if rnd() < 0.8 else lk["provider"][randrange(4)]
            appt_buf.write(
                f"{appointment_id}\t{practice_id}\tA{appointment_id}\t{patient_id}\t"
                f"{case[0] if case else r'\N'}\t{start}\t{text}\t30\t{status}\t{checked_in}\t"
                f"{purpose}\t{appt_provider}\t{booked_at}\t{stamp}\t{stamp}\n"
            )
            if status == "completed" and rnd() < 0.5:
                service = lk["service"][randrange(5)]
                service_buf.write(f"{practice_id}\t{appointment_id}\t{service}\n")
                tables.rows["patients_appointmentservice"] += 1
        tables.rows["patients_appointment"] += len(appointments)

        for case_id, c, case_type, attorney, insurance, case_appointments in cases:
            visits = [d for d, s in case_appointments if s in VISIT]
            kept = [d for d, s in case_appointments if s not in CANCELLED]
            case_buf.write(
                f"{case_id}\t{practice_id}\tC{case_id}\t{patient_id}\t{case_type}\t"
                f"{_d(attorney)}\t{_d(insurance)}\t{'open' if c == case_count - 1 else 'closed'}\t"
                f"{len(visits)}\t{texts[min(visits)] if visits else NULL}\t"
                f"{texts[max(visits)] if visits else NULL}\t{texts[max(kept)] if kept else NULL}\t"
                f"{stamp}\t{stamp}\n"
            )
        tables.rows["patients_case"] += case_count

        for tag_id, weight in zip(tag_ids, TAG_WEIGHTS, strict=True):
            if rnd() < weight:
                tag_buf.write(f"{practice_id}\t{patient_id}\t{tag_id}\n")
                tables.rows["patients_patienttag"] += 1

        city, state, zip_prefix = places[randrange(2)]
        if rnd() < 0.03 and previous_phone:
            phone = previous_phone  # a family sharing a phone
        elif rnd() < 0.08:
            phone = ""
        else:
            phone = f"+1{200 + practice_id % 700:03d}{patient_id % 10_000_000:07d}"
        previous_phone = phone or previous_phone
        email = "" if rnd() < 0.15 else f"p{patient_id}@patients.example"
        sms_out = rnd() < 0.02
        email_out = rnd() < 0.03
        status = "active" if rnd() < 0.85 else ("inactive" if rnd() < 0.9 else "discharged")
        attorney = lk["attorney"][randrange(3)] if rnd() < 0.05 else None
        patient_buf.write(
            "\t".join(
                (
                    str(patient_id),
                    str(practice_id),
                    f"EMR-{n:07d}",
                    FIRST[randrange(len(FIRST))],
                    LAST[randrange(len(LAST))],
                    str(birth),
                    str(birth.month),
                    str(birth.day),
                    "FMFMU"[randrange(5)] if rnd() < 0.1 else "FM"[randrange(2)],
                    phone,
                    email,
                    f"{1 + randrange(9999)} Main St",
                    "",
                    city,
                    state,
                    f"{zip_prefix}{randrange(100):02d}",
                    status,
                    _d(emr_first),
                    str(provider),
                    _d(lk["referral_source"][randrange(4)] if rnd() < 0.9 else None),
                    _d(attorney),
                    _d(lk["care_package"][randrange(3)] if rnd() < 0.3 else None),
                    _d(lk["fee_schedule"][randrange(3)] if rnd() < 0.5 else None),
                    _d(lk["insurance_company"][randrange(4)] if rnd() < 0.7 else None),
                    f"{randrange(500_000) / 100:.2f}",
                    "t" if sms_out else "f",
                    stamp if sms_out else r"\N",
                    "sms_reply" if sms_out else "",
                    "t" if email_out else "f",
                    stamp if email_out else r"\N",
                    "unsubscribe" if email_out else "",
                    str(len(visit_days)),
                    _d(first_visit_date),
                    _d(first_visit_date.month if first_visit_date else None),
                    _d(first_visit_date.day if first_visit_date else None),
                    texts[max(visit_days)] if visit_days else NULL,
                    texts[max(kept_days)] if kept_days else NULL,
                    stamp,
                    stamp,
                )
            )
            + "\n"
        )
        tables.rows["patients_patient"] += 1


LOADED_TABLES = list(_Tables.COLUMNS)


def _secondary_indexes_drop(cursor) -> list[str]:
    """Drop the loaded tables' secondary indexes and unique constraints; return the
    statements that recreate them."""
    recreate = []
    for table in LOADED_TABLES:
        cursor.execute(
            """
            SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), c.conname,
                   pg_get_constraintdef(c.oid)
            FROM pg_index i
            LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.contype = 'u'
            WHERE i.indrelid = %s::regclass AND NOT i.indisprimary
            """,
            [table],
        )
        for index, indexdef, constraint, constraintdef in cursor.fetchall():
            if constraint:
                cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{constraint}"')
                recreate.append(
                    f'ALTER TABLE {table} ADD CONSTRAINT "{constraint}" {constraintdef}'
                )
            else:
                cursor.execute(f"DROP INDEX {index}")
                recreate.append(indexdef)
    return recreate


WORKERS = 2


@dataclass
class _Job:
    practice_id: int
    tz_name: str
    patients: int
    ids: dict
    seed: int


def _connection_params() -> dict:
    from django.db import connection

    settings = connection.settings_dict
    params = {"dbname": settings["NAME"], "user": settings["USER"] or "postgres"}
    for key, name in [("HOST", "host"), ("PORT", "port"), ("PASSWORD", "password")]:
        if settings.get(key):
            params[name] = settings[key]
    return params


def _load(jobs: list[_Job], *, params: dict, shared: dict) -> dict:
    """In a loader process: generate these practices' rows and COPY them, on a connection
    of its own with the foreign-key triggers off."""
    import psycopg

    tables = _Tables()
    with psycopg.connect(**params, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("SET synchronous_commit = off")
        for job in jobs:
            _practice_rows(
                tables,
                random.Random(job.seed),
                practice_id=job.practice_id,
                tz_name=job.tz_name,
                patients=job.patients,
                ids=dict(job.ids),
                **shared,
            )
        tables.flush(cursor)
    return tables.rows


def _run_split(params: dict, statements: list[str], *, workers: int) -> None:
    """Run the statements (index builds) on ``workers`` connections side by side."""
    import psycopg

    def run(part: list[str]) -> None:
        with psycopg.connect(**params, autocommit=True) as conn:
            conn.execute("SET maintenance_work_mem = '1GB'")
            for statement in part:
                conn.execute(statement)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, [statements[i::workers] for i in range(workers)]))


def campaigns_create(*, practice_ids: list[int], enabled_at: dt.datetime) -> int:
    """The campaign set: created for the first practice through the serializer and the
    service, then copied for the others (bulk inserts). Returns how many campaigns."""
    from campaigns.language.spec import CampaignSerializer
    from campaigns.models import Campaign, MessageStep
    from campaigns.services import campaign_create
    from trackstat.models import Practice

    first = Practice.objects.get(pk=practice_ids[0])
    for spec in CAMPAIGNS:
        data = {"enabled": spec.get("kind") != "blast", **spec}
        serializer = CampaignSerializer(data=data)
        if not serializer.is_valid():
            raise ValueError(f"benchmark campaign {spec['name']!r}: {serializer.errors}")
        campaign_create(practice=first, data=serializer.validated_data, actor="benchmark")
    Campaign.objects.filter(practice=first, enabled=True).update(enabled_at=enabled_at)
    templates = list(Campaign.objects.filter(practice=first).prefetch_related("steps"))
    copied = []
    for practice_id in practice_ids[1:]:
        for template in templates:
            copy = Campaign(practice_id=practice_id)
            for field in Campaign._meta.concrete_fields:
                if field.name not in ("id", "practice", "created_at", "updated_at"):
                    setattr(copy, field.attname, getattr(template, field.attname))
            copied.append((copy, template))
    Campaign.objects.bulk_create([c for c, _ in copied], batch_size=2000)
    MessageStep.objects.bulk_create(
        [
            MessageStep(
                practice_id=copy.practice_id,
                campaign=copy,
                position=step.position,
                channel=step.channel,
                subject=step.subject,
                body=step.body,
                delay_value=step.delay_value,
                delay_unit=step.delay_unit,
            )
            for copy, template in copied
            for step in template.steps.all()
        ],
        batch_size=2000,
    )
    return len(templates) + len(copied)


def generate(
    *,
    practices: int,
    patients_per_practice: int,
    today: dt.date = BENCH_DAY,
    as_of: dt.datetime | None = None,
    seed: int = 8,
    verbose: bool = True,
) -> Generated:
    """Load ``practices`` practices of ``patients_per_practice`` patients each into the
    (migrated, empty of benchmark data) database Django is set up with.

    ``today`` is the local day the data is shaped around (upcoming appointments after it,
    a day's schedule on it); ``as_of`` (default 10:05 in Los Angeles on ``today``) splits
    today's appointments into those that have happened and those still to come.
    """
    from django.db import connection, transaction

    from patients.models import Lookup, Tag
    from trackstat.models import Practice

    started = time.perf_counter()
    as_of = as_of or dt.datetime.combine(
        today, dt.time(10, 5), zoneinfo.ZoneInfo("America/Los_Angeles")
    )
    stamp = (as_of - dt.timedelta(days=1)).isoformat()

    def say(message: str) -> None:
        if verbose:
            print(f"[generate {time.perf_counter() - started:6.1f} s] {message}", flush=True)

    created = Practice.objects.bulk_create(
        [
            Practice(
                name=f"Bench Practice {n + 1}",
                slug=f"bench-{n + 1}",
                time_zone=ZONES[n % len(ZONES)],
                phone=f"+1312555{n % 10000:04d}",
                sms_from=f"+1312666{n % 10000:04d}",
                email_from=f"office{n + 1}@practice.example",
                email_from_name=f"Bench Practice {n + 1}",
                online_scheduling_url=f"https://book.practice.example/{n + 1}",
                # Marketing email needs the practice's postal address (DESIGN §5.8).
                address_line1=f"{n + 1} Bench Street",
                city="Springfield",
                state="IL",
                postal_code="62701",
            )
            for n in range(practices)
        ]
    )
    practice_ids = [p.pk for p in created]
    zones = {p.pk: p.time_zone for p in created}
    lookup_rows = Lookup.objects.bulk_create(
        [
            Lookup(practice_id=pid, kind=kind, name=name)
            for pid in practice_ids
            for kind, names in LOOKUPS.items()
            for name in names
        ],
        batch_size=5000,
    )
    lookups = {(r.practice_id, r.kind, r.name): r.pk for r in lookup_rows}
    tag_rows = Tag.objects.bulk_create(
        [Tag(practice_id=pid, name=name) for pid in practice_ids for name in TAGS]
    )
    tags = {(r.practice_id, r.name): r.pk for r in tag_rows}
    campaigns = campaigns_create(practice_ids=practice_ids, enabled_at=as_of - dt.timedelta(30))
    say(f"{practices} practices, their lookups, tags and {campaigns} campaigns")

    with connection.cursor() as cursor:
        bases = {}
        for name, table in [
            ("patient", "patients_patient"),
            ("case", "patients_case"),
            ("appointment", "patients_appointment"),
        ]:
            cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}")  # noqa: S608
            bases[name] = cursor.fetchone()[0]
        with transaction.atomic():
            recreate = _secondary_indexes_drop(cursor)
    # Each practice gets its own id blocks and random seed, so the two loader processes
    # (one per core) produce the same rows in whatever order they run.
    jobs = [
        _Job(
            practice_id=practice_id,
            tz_name=zones[practice_id],
            patients=patients_per_practice,
            ids={
                "patient": bases["patient"] + index * patients_per_practice,
                "case": bases["case"] + index * patients_per_practice * 3,
                "appointment": bases["appointment"] + index * patients_per_practice * 19,
            },
            seed=seed * 1_000_003 + index,
        )
        for index, practice_id in enumerate(practice_ids)
    ]
    shared = {"lookups": lookups, "tags": tags, "today": today, "as_of": as_of, "stamp": stamp}
    params = _connection_params()
    connection.close()  # not shared with the forked loaders
    counts = dict.fromkeys(LOADED_TABLES, 0)
    workers = min(WORKERS, len(jobs))
    chunks = [jobs[i : i + 5] for i in range(0, len(jobs), 5)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        loaded = pool.imap_unordered(functools.partial(_load, params=params, shared=shared), chunks)
        for done, rows in enumerate(loaded, start=1):
            for name, count in rows.items():
                counts[name] += count
            if done % 10 == 0:
                say(f"{done * 5} practices loaded")
    say(f"rows copied: {counts}; rebuilding {len(recreate)} indexes")
    _run_split(params, recreate, workers=2)
    with connection.cursor() as cursor:
        for table in ("patients_patient", "patients_case", "patients_appointment"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                f"(SELECT coalesce(max(id), 1) FROM {table}))"
            )
        for table in LOADED_TABLES:
            cursor.execute(f"ANALYZE {table}")
    seconds = time.perf_counter() - started
    say(f"done in {seconds:.1f} s")
    return Generated(
        practices=practices,
        patients=counts["patients_patient"],
        cases=counts["patients_case"],
        appointments=counts["patients_appointment"],
        campaigns=campaigns,
        seconds=seconds,
        counts=counts,
    )


def main() -> None:
    import argparse

    from benchmarks.common import database_url_for, recreate_database, setup_django

    parser = argparse.ArgumentParser()
    parser.add_argument("--size", choices=list(SIZES), default="small")
    args = parser.parse_args()
    url = database_url_for("generate")
    recreate_database(url)
    setup_django(url)
    practices, patients = SIZES[args.size]
    result = generate(practices=practices, patients_per_practice=patients)
    print(
        f"Generated {result.practices:,} practices, {result.patients:,} patients, "
        f"{result.cases:,} cases, {result.appointments:,} appointments, "
        f"{result.campaigns:,} campaigns in {result.seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
