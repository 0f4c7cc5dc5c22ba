"""The Report tab, its CSV download and ``GET /api/v1/campaigns/{id}/report`` (issue 7):
every role views, only Managers and Administrators download, another practice's campaign is
a 404, and a bad date names its field."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse

from campaigns.engine import tick
from reports.rollup import rollups_refresh
from reports.selectors import campaign_report
from reports.tasks import refresh_rollups_task
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip, sms
from tests.factories import MembershipFactory
from tests.reports.test_rollup import NOV2, NOV4, WHOLE_RANGE_TOTALS, build
from trackstat.models import Role
from trackstat.services import api_key_create

pytestmark = pytest.mark.django_db

RANGE = {"from": NOV2.isoformat(), "to": NOV4.isoformat()}


@pytest.fixture
def fixture():
    return build(refresh_each_step=False)


def client_for(client, fixture, role):
    membership = MembershipFactory(practice=fixture.practice, role=role)
    client.force_login(membership.user)
    return client


@pytest.mark.parametrize("role", list(Role))
def test_every_role_sees_the_report_page_with_its_numbers_and_chart(client, fixture, role):
    client_for(client, fixture, role)

    response = client.get(reverse("reports:campaign", args=[fixture.campaign.pk]), RANGE)

    assert response.status_code == 200
    page = response.text
    assert '<dd id="total-recipients">3</dd>' in page
    assert '<dd id="delivered-percent">66.7%</dd>' in page
    assert '<dd id="total-unsubscribed">2</dd>' in page
    assert '<svg class="report-chart"' in page
    assert page.count('<g class="day">') == 3  # one bar group per day of the range
    assert "Step 2 · Email" in page
    assert "no phone number" in page
    download = reverse("reports:campaign_csv", args=[fixture.campaign.pk])
    assert (download in page) == (role >= Role.MANAGER)


def test_a_user_cannot_download_the_csv(client, fixture):
    client_for(client, fixture, Role.USER)
    url = reverse("reports:campaign_csv", args=[fixture.campaign.pk])
    assert client.get(url, RANGE).status_code == 403
    client_for(client, fixture, Role.USER_PLUS)
    assert client.get(url, RANGE).status_code == 403


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ADMINISTRATOR])
def test_a_manager_downloads_the_csv(client, fixture, role):
    client_for(client, fixture, role)
    url = reverse("reports:campaign_csv", args=[fixture.campaign.pk])

    response = client.get(url, RANGE)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows[0]["row"] == "Welcome"
    assert {k: rows[0][k] for k in ("recipients", "sent", "delivered", "delivered_percent")} == {
        "recipients": "3",
        "sent": "6",
        "delivered": "4",
        "delivered_percent": "66.7",
    }
    assert [r["row"] for r in rows[1:4]] == [
        "Before the first message",
        "Step 1 · SMS",
        "Step 2 · Email",
    ]
    daily = client.get(url, {**RANGE, "part": "daily"})
    days = list(csv.DictReader(io.StringIO(daily.text)))
    assert [(d["date"], d["sent"], d["errors"]) for d in days] == [
        ("2026-11-02", "3", "1"),
        ("2026-11-03", "2", "1"),
        ("2026-11-04", "1", "0"),
    ]
    assert client.get(url, {**RANGE, "part": "everything"}).status_code == 400


def test_a_formula_in_a_campaign_name_is_not_run_by_a_spreadsheet(client, fixture):
    fixture.campaign.name = "=HYPERLINK(1)"
    fixture.campaign.save()
    client_for(client, fixture, Role.MANAGER)
    url = reverse("reports:campaign_csv", args=[fixture.campaign.pk])
    assert "'=HYPERLINK(1)" in client.get(url, RANGE).text


def test_the_overview_lists_every_campaign_with_bell_and_numbers(client, fixture):
    client_for(client, fixture, Role.USER)

    response = client.get(reverse("reports:index"), RANGE)

    assert response.status_code == 200
    (headline,) = response.context["headlines"]
    assert headline.campaign == fixture.campaign
    assert headline.numbers.sent == 6
    assert 'class="bell on"' in response.text


def test_another_practices_campaign_is_a_404(client, fixture, member_client):
    stranger = member_client(Role.ADMINISTRATOR)
    for name in ("reports:campaign", "reports:campaign_csv"):
        url = reverse(name, args=[fixture.campaign.pk])
        assert stranger.get(url, RANGE).status_code == 404, name


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2026-11-05", "to": "2026-11-01"}, "from"),
        ({"from": "2020-01-01", "to": "2026-11-01"}, "to"),
    ],
)
def test_a_bad_range_names_its_field(client, fixture, params, field):
    client_for(client, fixture, Role.USER)
    page = client.get(reverse("reports:campaign", args=[fixture.campaign.pk]), params)
    assert page.status_code == 400
    assert f"<li>{field.capitalize()}: " in page.text
    api = client.get(reverse("api_campaign_report", args=[fixture.campaign.pk]), params)
    assert api.status_code == 400
    assert list(api.json()["errors"]) == [field]


def test_the_api_answers_the_same_numbers(client, fixture):
    key = api_key_create(practice=fixture.practice, name="EMR").secret

    response = client.get(
        f"/api/v1/campaigns/{fixture.campaign.pk}/report",
        RANGE,
        headers={"Authorization": f"Api-Key {key}"},
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["from"], body["to"], body["time_zone"]) == (
        "2026-11-02",
        "2026-11-04",
        "America/New_York",
    )
    totals = body["totals"]
    expected = {
        **{k: v for k, v in WHOLE_RANGE_TOTALS.items() if k not in ("conversions",)},
        "goal_conversions": 2,
        "goal_conversion_percent": 66.7,
    }
    expected.pop("conversion_percent")
    assert {k: totals[k] for k in expected} == expected
    assert totals["skipped_by_reason"] == [
        {"status": "canceled", "reason": "goal met", "count": 1},
        {"status": "skipped", "reason": "no phone number", "count": 1},
    ]
    assert [s["position"] for s in body["steps"]] == [0, 1, 2]
    assert [(d["date"], d["sent"]) for d in body["daily"]] == [
        ("2026-11-02", 3),
        ("2026-11-03", 2),
        ("2026-11-04", 1),
    ]


def test_every_role_reads_the_api_by_session_and_strangers_get_404(client, fixture):
    url = reverse("api_campaign_report", args=[fixture.campaign.pk])
    client_for(client, fixture, Role.USER)
    assert client.get(url, RANGE).json()["totals"]["sent"] == 6
    other_key = api_key_create(practice=MembershipFactory().practice, name="x").secret
    response = client.get(url, RANGE, headers={"Authorization": f"Api-Key {other_key}"})
    assert response.status_code == 404


def test_the_engine_and_the_beat_task_fill_the_report():
    """End to end: ticks send through the sandbox (which reports delivery), the beat task
    rolls up, and the report counts each patient once."""
    clinic = Clinic()
    campaign = drip(
        clinic,
        {"type": "birthday"},
        name="Birthday",
        enabled_at=ny(2026, 6, 1),
        messages=[sms("Happy birthday"), sms("Treat yourself", value=1, unit="days")],
    )
    clinic.patient(birth_date=dt.date(1990, 6, 15), phone="+13125550123")
    clinic.patient(birth_date=dt.date(1985, 6, 15), phone="+13125550124")
    clinic.patient(birth_date=dt.date(1985, 6, 15))  # no phone: skipped
    tick(now=ny(2026, 6, 15, 10, 0), send="inline")
    tick(now=ny(2026, 6, 16, 10, 0), send="inline")
    refresh_rollups_task()

    report = campaign_report(campaign, date_from=dt.date(2026, 6, 15), date_to=dt.date(2026, 6, 16))
    assert (report.totals.recipients, report.totals.sent, report.totals.delivered) == (2, 4, 4)
    assert report.totals.skipped == 2  # the patient without a phone, at both steps
    assert [(r.status, r.reason, r.count) for r in report.skipped] == [
        ("skipped", "no mobile phone", 2)
    ]
    assert rollups_refresh() == 0


def test_each_day_bar_carries_its_geometry_and_title(client, fixture):
    """The bars are written in Python (a year is 366 of them): the same elements the template
    wrote, each number of the chart's geometry in place."""
    client_for(client, fixture, Role.MANAGER)
    response = client.get(reverse("reports:campaign", args=[fixture.campaign.pk]), RANGE)
    report = response.context["report"]
    bar = response.context["chart"].bars[0]
    day = report.days[0]

    assert (
        f'<g class="day"><title>{day.day:%a %d %b %Y}: {day.numbers.sent} sent, '
        f"{day.numbers.delivered} delivered, {day.numbers.errors} errors</title>\n"
        f'      <rect class="sent" x="{bar.x}" y="{bar.sent_y}" width="{bar.width}" '
        f'height="{bar.sent_h}"></rect>\n'
        f'      <rect class="delivered" x="{bar.x}" y="{bar.delivered_y}" width="{bar.width}" '
        f'height="{bar.delivered_h}"></rect>\n'
        f'      <rect class="errors" x="{bar.error_x}" y="{bar.error_y}" width="{bar.error_w}" '
        f'height="{bar.error_h}"></rect>\n'
        "    </g>"
    ) in response.text
