"""``GET /api/v1/campaigns/{id}/report?from=&to=`` (DESIGN §4.1, §8): the numbers of the
Report tab as JSON. Every role may read reports (§3); an API key may too."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns.models import Campaign
from reports.experiments import arm_json
from reports.selectors import CampaignReport, Numbers, SkipRow, campaign_report, report_range
from trackstat.models import Role


class SkipSerializer(serializers.Serializer):
    status = serializers.CharField()
    reason = serializers.CharField()
    count = serializers.IntegerField()


class NumbersSerializer(serializers.Serializer):
    recipients = serializers.IntegerField(help_text="Distinct patients sent a message.")
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    delivered_percent = serializers.FloatField(allow_null=True, help_text="delivered ÷ sent")
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()
    errors = serializers.IntegerField(help_text="Failed, undelivered, dropped.")
    bounced = serializers.IntegerField()
    unsubscribed = serializers.IntegerField()
    goal_conversions = serializers.IntegerField()
    goal_conversion_percent = serializers.FloatField(
        allow_null=True, help_text="goal conversions ÷ recipients"
    )
    skipped = serializers.IntegerField()
    skipped_by_reason = SkipSerializer(many=True)


class StepSerializer(NumbersSerializer):
    position = serializers.IntegerField(help_text="0: a goal met before any message")
    channel = serializers.CharField()


class DaySerializer(serializers.Serializer):
    date = serializers.DateField()
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()
    errors = serializers.IntegerField()
    bounced = serializers.IntegerField()
    unsubscribed = serializers.IntegerField()
    goal_conversions = serializers.IntegerField()
    skipped = serializers.IntegerField()


class ArmSerializer(serializers.Serializer):
    arm = serializers.CharField(help_text="holdout, treatment or a variant's name")
    enrolled = serializers.IntegerField(help_text="Enrollments that entered in the range.")
    sent = serializers.IntegerField(help_text="Messages.")
    delivered = serializers.IntegerField()
    clicked = serializers.IntegerField()
    booked = serializers.IntegerField()
    visited = serializers.IntegerField()
    revenue = serializers.DecimalField(max_digits=14, decimal_places=2)
    booked_rate = serializers.FloatField(allow_null=True, help_text="booked ÷ enrolled")
    visited_rate = serializers.FloatField(allow_null=True, help_text="visited ÷ enrolled")
    booked_rate_diff = serializers.FloatField(
        required=False, allow_null=True, help_text="This arm minus the holdout (not on it)."
    )
    booked_rate_diff_ci95 = serializers.ListField(
        child=serializers.FloatField(),
        required=False,
        allow_null=True,
        help_text="[low, high], Newcombe's hybrid score interval",
    )
    visited_rate_diff = serializers.FloatField(required=False, allow_null=True)
    visited_rate_diff_ci95 = serializers.ListField(
        child=serializers.FloatField(), required=False, allow_null=True
    )
    booked_min_detectable_diff = serializers.FloatField(required=False, allow_null=True)
    visited_min_detectable_diff = serializers.FloatField(required=False, allow_null=True)
    booked_sentence = serializers.CharField(required=False)
    visited_sentence = serializers.CharField(required=False)


class ExperimentPeriodSerializer(serializers.Serializer):
    period = serializers.IntegerField()
    started_at = serializers.DateTimeField(allow_null=True)
    holdout_percent = serializers.IntegerField()
    variants = serializers.ListField(child=serializers.DictField())
    arms = ArmSerializer(many=True)


# "from" and "to" are Python keywords: the class is built from a dict of its fields.
ReportSerializer = type(
    "ReportSerializer",
    (serializers.Serializer,),
    {
        "campaign": serializers.IntegerField(),
        "name": serializers.CharField(),
        "time_zone": serializers.CharField(),
        "from": serializers.DateField(),
        "to": serializers.DateField(),
        "refreshed_at": serializers.DateTimeField(allow_null=True),
        "totals": NumbersSerializer(),
        "steps": StepSerializer(many=True),
        "daily": DaySerializer(many=True),
        "arms": ArmSerializer(many=True),
        "experiment_periods": ExperimentPeriodSerializer(many=True),
    },
)


def _skips(rows: list[SkipRow]) -> list[dict]:
    return [{"status": r.status, "reason": r.reason, "count": r.count} for r in rows]


def _numbers(n: Numbers, skipped: list[SkipRow]) -> dict:
    return {
        "recipients": n.recipients,
        "sent": n.sent,
        "delivered": n.delivered,
        "delivered_percent": n.delivered_percent,
        "opened": n.opened,
        "clicked": n.clicked,
        "errors": n.errors,
        "bounced": n.bounced,
        "unsubscribed": n.unsubscribed,
        "goal_conversions": n.conversions,
        "goal_conversion_percent": n.conversion_percent,
        "skipped": n.skipped,
        "skipped_by_reason": _skips(skipped),
    }


def report_json(report: CampaignReport) -> dict:
    campaign = report.campaign
    return {
        "campaign": campaign.pk,
        "name": campaign.name,
        "time_zone": campaign.practice.time_zone,
        "from": report.date_from.isoformat(),
        "to": report.date_to.isoformat(),
        "refreshed_at": report.refreshed_at.isoformat() if report.refreshed_at else None,
        "totals": _numbers(report.totals, report.skipped),
        "steps": [
            {
                "position": step.position,
                "channel": step.channel,
                **_numbers(step.numbers, step.skipped),
            }
            for step in report.steps
        ],
        "daily": [
            {
                "date": row.day.isoformat(),
                "sent": row.numbers.sent,
                "delivered": row.numbers.delivered,
                "opened": row.numbers.opened,
                "clicked": row.numbers.clicked,
                "errors": row.numbers.errors,
                "bounced": row.numbers.bounced,
                "unsubscribed": row.numbers.unsubscribed,
                "goal_conversions": row.numbers.conversions,
                "skipped": row.numbers.skipped,
            }
            for row in report.days
        ],
        "arms": [arm_json(arm) for arm in report.arms],
        "experiment_periods": [
            {
                "period": period.number,
                "started_at": period.started_at.isoformat() if period.started_at else None,
                "holdout_percent": period.holdout_percent,
                "variants": period.variants,
                "arms": [arm_json(arm) for arm in period.arms],
            }
            for period in report.experiments
        ],
    }


class CampaignReportApi(APIView):
    """A campaign's report over practice-local dates ``from``..``to`` (default: the last 30
    days). Test sends are not counted."""

    required_role = Role.USER

    @extend_schema(
        parameters=[
            OpenApiParameter("from", str, description="YYYY-MM-DD, practice-local"),
            OpenApiParameter("to", str, description="YYYY-MM-DD, practice-local"),
        ],
        responses=ReportSerializer,
    )
    def get(self, request, campaign_id: int):
        practice = request.practice
        campaign = get_object_or_404(Campaign.objects.filter(practice=practice), pk=campaign_id)
        campaign.practice = practice
        date_from, date_to, errors = report_range(request.query_params, practice)
        if errors:
            raise ValidationError(errors)
        return Response(
            report_json(campaign_report(campaign, date_from=date_from, date_to=date_to))
        )
