"""CSV downloads of a campaign report (Managers and Administrators, DESIGN §3)."""

from __future__ import annotations

import csv
import io

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


def report_csv(report: CampaignReport, *, part: str) -> str:
    """``part`` "summary": the campaign's totals, one row per step, then skipped by reason;
    "daily": one row per day of the range."""
    out = io.StringIO()
    writer = csv.writer(out)
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
