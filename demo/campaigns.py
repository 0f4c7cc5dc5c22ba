"""The demo practice's campaigns: one of each common use (DESIGN §5.1), for ``seed_demo``.

Created through the campaign serializer and service, like the API's; re-running the seed
leaves existing campaigns (matched by name) as staff may have changed them.
"""

from __future__ import annotations

from campaigns.language.spec import CampaignSerializer
from campaigns.models import Campaign
from campaigns.services import campaign_create
from trackstat.models import Practice

DAILY_10 = {"frequency": "daily", "time": "10:00"}
ACTIVE = {"status": "active"}


def _sms(body: str, value: int = 0, unit: str = "days") -> dict:
    return {"channel": "sms", "body": body, "delay": {"value": value, "unit": unit}}


def _email(subject: str, body: str, value: int = 0, unit: str = "days") -> dict:
    return {
        "channel": "email",
        "subject": subject,
        "body": body,
        "delay": {"value": value, "unit": unit},
    }


DEMO_CAMPAIGNS: list[dict] = [
    {
        "name": "Happy birthday",
        "trigger": {"type": "birthday", "offset_days": 0},
        "filters": ACTIVE,
        "messages": [
            _sms("Happy birthday, {{PatientFirstName}}! From all of us at {{PracticeName}}.")
        ],
    },
    {
        "name": "New-patient welcome series",
        "trigger": {"type": "first_visit", "days_after": 0},
        "messages": [
            _sms(
                "Welcome to {{PracticeName}}, {{PatientFirstName}}! "
                "Questions? Call {{PracticePhone}}."
            ),
            _email(
                "How are you feeling, {{PatientFirstName}}?",
                "<p>Hi {{PatientFirstName}},</p><p>A few days in: how are you feeling? "
                'Book your next visit: <a href="{{OnlineSchedulingLink}}">schedule online</a>.</p>'
                '<p><a href="{{UnsubscribeLink}}">Unsubscribe</a></p>',
                value=3,
            ),
            _sms(
                "Consistency is key! Book your next adjustment: {{OnlineSchedulingLink}}", value=11
            ),
        ],
        "goal": {"type": "future_appointment"},
    },
    {
        "name": "First-visit anniversary",
        "trigger": {"type": "anniversary", "offset_days": 0},
        "filters": ACTIVE,
        "messages": [_sms("Happy anniversary, {{PatientFirstName}}! Thank you for trusting us.")],
    },
    {
        "name": "Post-visit check-in (same day)",
        "trigger": {"type": "last_visit_checked_in", "when": "today", "hours_after": 2},
        "messages": [_sms("Hi {{PatientFirstName}}, how are you feeling after today's visit?")],
    },
    {
        "name": "Next-morning soreness check",
        "trigger": {"type": "last_visit_checked_in", "when": "yesterday"},
        "messages": [
            _sms("Good morning {{PatientFirstName}}! A little soreness is normal. Drink water!")
        ],
    },
    {
        "name": "Fifth visit thank-you",
        "trigger": {"type": "last_visit_checked_in", "when": "today", "hours_after": 1},
        "filters": {"visit_count": {"eq": 5}},
        "messages": [_sms("Five visits, {{PatientFirstName}}! Thanks for staying on track.")],
    },
    {
        "name": "Missed-appointment follow-up",
        "trigger": {"type": "missed_appointment", "minutes_after": 30},
        "filters": {"has_future_appointment": False},
        "messages": [
            _sms(
                "We missed you at {{AppointmentTime}}, {{PatientFirstName}}. "
                "Rebook: {{OnlineSchedulingLink}}"
            )
        ],
    },
    {
        "name": "Reactivation 6 months",
        "trigger": {
            "type": "last_visit_checked_in",
            "when": "days_ago",
            "days": 180,
            "match": "at_least",
        },
        "filters": {
            "tags": {"include": [], "exclude": ["not qualified", "moved"]},
            "status": "active",
            "has_future_appointment": False,
            "case_types": ["Personal Injury"],
        },
        "exclude_recent_days": 30,
        "messages": [
            _sms("Hi {{PatientFirstName}}, we miss you! Book: {{OnlineSchedulingLink}}"),
            _email(
                "Time for a check-up?",
                "<p>It's been a while, {{PatientFirstName}}.</p>"
                '<p><a href="{{UnsubscribeLink}}">Unsubscribe</a></p>',
                value=3,
            ),
        ],
        "goal": {"type": "future_appointment"},
    },
    {
        "name": "No-conversion",
        "trigger": {
            "type": "last_visit_scheduled",
            "when": "days_ago",
            "days": 30,
            "match": "at_least",
        },
        "filters": {"has_future_appointment": False, "status": "active"},
        "messages": [
            _sms("Hi {{PatientFirstName}}, ready to get started? {{OnlineSchedulingLink}}")
        ],
    },
    {
        "name": "Online scheduling invitation",
        "trigger": {
            "type": "last_visit_checked_in",
            "when": "days_ago",
            "days": 60,
            "match": "exact",
        },
        "filters": {"has_future_appointment": False},
        "messages": [
            _sms("Book your next visit online in seconds: {{OnlineSchedulingLink}}"),
            _sms("Still time to book, {{PatientFirstName}}: {{OnlineSchedulingLink}}", value=7),
        ],
        "goal": {"type": "clicked_link"},
    },
    {
        "name": "Appointment reminder",
        "trigger": {"type": "scheduled_appointment", "when": "days_before", "days": 1},
        "messages": [
            _sms(
                "Reminder: {{AppointmentDate}} at {{AppointmentTime}} with {{ProviderName}}. "
                "See you then!"
            )
        ],
    },
]

DEMO_BLAST = {
    "name": "Holiday hours",
    "kind": "blast",
    "filters": ACTIVE,
    "messages": [_sms("{{PracticeName}} is closed Thursday for the holiday. Happy Thanksgiving!")],
}


def demo_campaigns_load(*, practice: Practice) -> int:
    """Create the demo campaigns that do not exist yet (by name); return how many."""
    existing = set(Campaign.objects.filter(practice=practice).values_list("name", flat=True))
    created = 0
    for spec in [*DEMO_CAMPAIGNS, DEMO_BLAST]:
        if spec["name"] in existing:
            continue
        data = {"enabled": spec.get("kind") != "blast", **spec}
        if data.get("trigger") and "schedule" not in data:
            data["schedule"] = DAILY_10
        serializer = CampaignSerializer(data=data)
        if not serializer.is_valid():
            raise ValueError(f"demo campaign {spec['name']!r}: {serializer.errors}")
        campaign_create(practice=practice, data=serializer.validated_data, actor="seed_demo")
        created += 1
    return created
