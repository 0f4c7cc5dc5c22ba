"""CSV downloads of a campaign report (Managers and Administrators, DESIGN §3)."""

from __future__ import annotations

import csv
import io

from reports.experiments import arm_json
from reports.selectors import CampaignReport, Numbers

SUMMARY_HEADER = [
    "row",
    "channel",
    "recipients",
    "sent",
    "delivered",
    "delivered_percent",
    "opened",
    "clicked",
    "errors",
    "bounced",
    "unsubscribed",
    "goal_conversions",
    "goal_conversion_percent",
    "skipped",
]
DAILY_HEADER = [
    "date",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "errors",
    "bounced",
    "unsubscribed",
    "goal_conversions",
    "skipped",
]


def _cell(value) -> str:
    """A spreadsheet never runs a cell as a formula (names come from staff)."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _numbers(n: Numbers) -> list:
    return [
        n.recipients,
        n.sent,
        n.delivered,
        n.delivered_percent,
        n.opened,
        n.clicked,
        n.errors,
        n.bounced,
        n.unsubscribed,
        n.conversions,
        n.conversion_percent,
        n.skipped,
    ]


ARMS_HEADER = [
    "period",
    "arm",
    "enrolled",
    "sent",
    "delivered",
    "clicked",
    "booked",
    "booked_rate",
    "visited",
    "visited_rate",
    "revenue",
    "booked_rate_diff",
    "booked_rate_diff_ci95_low",
    "booked_rate_diff_ci95_high",
    "visited_rate_diff",
    "visited_rate_diff_ci95_low",
    "visited_rate_diff_ci95_high",
    "booked_min_detectable_diff",
    "visited_min_detectable_diff",
    "booked_sentence",
    "visited_sentence",
]


def _arms_csv(report: CampaignReport, writer) -> None:
    """One row per arm of each experiment period: the API's numbers (``arm_json``)."""
    writer.writerow(ARMS_HEADER)
    for period in report.experiments:
        for arm in period.arms:
            data = arm_json(arm)
            booked_ci = data.get("booked_rate_diff_ci95") or [None, None]
            visited_ci = data.get("visited_rate_diff_ci95") or [None, None]
            writer.writerow(
                [
                    period.number,
                    _cell(arm.arm),
                    *(data[name] for name in ARMS_HEADER[2:11]),
                    data.get("booked_rate_diff"),
                    *booked_ci,
                    data.get("visited_rate_diff"),
                    *visited_ci,
                    data.get("booked_min_detectable_diff"),
                    data.get("visited_min_detectable_diff"),
                    data.get("booked_sentence", ""),
                    data.get("visited_sentence", ""),
                ]
            )


def report_csv(report: CampaignReport, *, part: str) -> str:
    """``part`` "summary": the campaign's totals, one row per step, then skipped by reason;
    "daily": one row per day of the range; "arms": the experiment's arms per period."""
    out = io.StringIO()
    writer = csv.writer(out)
    if part == "arms":
        _arms_csv(report, writer)
        return out.getvalue()
    if part == "daily":
        writer.writerow(DAILY_HEADER)
        for row in report.days:
            n = row.numbers
            writer.writerow(
                [
                    row.day.isoformat(),
                    n.sent,
                    n.delivered,
                    n.opened,
                    n.clicked,
                    n.errors,
                    n.bounced,
                    n.unsubscribed,
                    n.conversions,
                    n.skipped,
                ]
            )
        return out.getvalue()
    writer.writerow(SUMMARY_HEADER)
    writer.writerow([_cell(report.campaign.name), "", *_numbers(report.totals)])
    for step in report.steps:
        writer.writerow([_cell(step.label), step.channel, *_numbers(step.numbers)])
    writer.writerow([])
    writer.writerow(["skipped_status", "skipped_reason", "count"])
    for skip in report.skipped:
        writer.writerow([skip.status, _cell(skip.reason), skip.count])
    return out.getvalue()
