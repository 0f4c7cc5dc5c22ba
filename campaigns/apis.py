"""REST API v1 for campaigns (DESIGN §4.1, §5): thin views over the campaign services.

Campaigns are for User Plus and above, to read as well as to write (DESIGN §3); an API key
(an EMR connector) may use every endpoint. A campaign of another practice is a 404.
"""

from __future__ import annotations

import datetime as dt
import re

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns import selectors, services
from campaigns.forecast import campaign_forecast
from campaigns.language.spec import CampaignSerializer
from campaigns.models import Campaign, CampaignKind
from patients.selectors import patient_queryset
from trackstat.api_auth import actor_of
from trackstat.api_errors import query_param
from trackstat.models import Role
from trackstat.validators import InvalidValue, parse_external_id, parse_instant

AUDIENCE_PAGE_SIZE = 50
AUDIENCE_FIELDS = ["external_id", "first_name", "last_name", "occurrence_key"]
UNENCODED_PLUS_RE = re.compile(r" ([0-9]{2}:?[0-9]{2})$")


class CampaignOutputSerializer(CampaignSerializer):
    """The campaign JSON of DESIGN §5, exactly as ``campaign_as_json`` writes it."""

    def to_representation(self, instance: Campaign) -> dict:
        return services.campaign_as_json(instance)


AudienceSerializer = inline_serializer(
    "CampaignAudience",
    {
        "at": serializers.DateTimeField(),
        "count": serializers.IntegerField(),
        "results": inline_serializer(
            "CampaignAudiencePatient",
            {
                "external_id": serializers.CharField(),
                "first_name": serializers.CharField(),
                "last_name": serializers.CharField(),
                "occurrence_key": serializers.CharField(),
            },
            many=True,
        ),
    },
)

ExplainSerializer = inline_serializer(
    "CampaignExplain",
    {
        "campaign": serializers.IntegerField(),
        "patient_external_id": serializers.CharField(),
        "at": serializers.DateTimeField(),
        "local_date": serializers.DateField(),
        "enabled": serializers.BooleanField(),
        "would_enter": serializers.BooleanField(),
        "occurrence_key": serializers.CharField(allow_null=True),
        "checks": serializers.ListField(
            child=serializers.DictField(), help_text="{check, passed, detail} per condition"
        ),
        "channels": serializers.ListField(
            child=serializers.DictField(), help_text="{channel, usable, reason} per channel"
        ),
        "reachable": serializers.BooleanField(),
        "quiet_hours": serializers.DictField(),
        "arm": serializers.CharField(
            allow_null=True, help_text="holdout, treatment or a variant (null: no experiment)"
        ),
        "arm_detail": serializers.CharField(allow_null=True),
        "trust": serializers.DictField(
            help_text="purpose; consent per channel (allowed, reason, decided_by); caps "
            "(cap, limit, counted, hours, passes, detail); state_rule; goes_out_at per channel"
        ),
    },
)

ForecastSerializer = inline_serializer(
    "CampaignForecast",
    {
        "at": serializers.DateTimeField(),
        "continuous": serializers.BooleanField(),
        "assumes_on": serializers.BooleanField(),
        "total": serializers.IntegerField(),
        "days": serializers.ListField(
            child=serializers.DictField(),
            help_text="{date, count, sms, email, skipped, expired, possible, times: [{at, count}], "
            "sample: [{patient_external_id, at, step, channel}]} per local day",
        ),
        "runs": serializers.ListField(
            child=serializers.DictField(), help_text="{at, entering} per run in the window"
        ),
    },
)

AT_PARAMETER = OpenApiParameter(
    "at",
    OpenApiTypes.DATETIME,
    description="The instant, ISO 8601 with an offset (default: now).",
)


class CampaignApiView(APIView):
    """Campaign endpoints: User Plus and above, for reads and writes alike."""

    required_role = Role.USER_PLUS

    def get_campaign(self, campaign_id: int) -> Campaign:
        practice = self.request.practice
        campaign = get_object_or_404(selectors.campaign_list(practice=practice), pk=campaign_id)
        campaign.practice = practice  # the same row: spares the audience and audit a query
        return campaign


def _json_object(data) -> dict:
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["Send a JSON object."]})
    return data


def _validated_campaign(data: dict, *, campaign: Campaign | None = None) -> dict:
    """The whole campaign validated as in DESIGN §5; an existing one keeps its kind."""
    if campaign is not None:
        data = {"kind": campaign.kind, **data}
        if data["kind"] != campaign.kind:
            raise ValidationError({"kind": ["A campaign cannot change between drip and blast."]})
    serializer = CampaignSerializer(data=data)
    if not serializer.is_valid():
        raise ValidationError(_steps_as_list(serializer.errors, data.get("messages")))
    return serializer.validated_data


def _steps_as_list(errors: dict, messages) -> dict:
    """Step errors as a list with one object per step, ``[{}, {"body": [...]}]``.

    DRF 3.18 keys a nested list's errors by index (``{1: {...}}``) while the cross-step checks
    of ``campaigns.language`` answer a list; clients get the list, whichever produced the error.
    """
    steps = errors.get("messages")
    if isinstance(steps, dict) and steps and all(isinstance(k, int) for k in steps):
        count = max(len(messages) if isinstance(messages, list) else 0, max(steps) + 1)
        errors = {**errors, "messages": [steps.get(index, {}) for index in range(count)]}
    return errors


def _service_errors(error: DjangoValidationError) -> ValidationError:
    """A service's refusal, in the API's error shape."""
    if hasattr(error, "error_dict"):
        return ValidationError(error.message_dict)
    return ValidationError({"non_field_errors": error.messages})


def _instant(request: Request, name: str) -> dt.datetime:
    """An aware instant from the query string (ISO 8601 with offset); now when absent."""

    def parse(value: str) -> dt.datetime:
        try:
            return parse_instant(value)
        except InvalidValue:
            # An unencoded "+05:00" offset arrives as " 05:00".
            repaired = UNENCODED_PLUS_RE.sub(r"+\1", value.strip())
            if repaired == value.strip():
                raise
            return parse_instant(repaired)

    return query_param(request, name, parse) or timezone.now()


class CampaignListApi(ListAPIView):
    """The practice's campaigns, by name, paginated; ``?kind=drip`` or ``blast`` narrows."""

    required_role = Role.USER_PLUS
    serializer_class = CampaignOutputSerializer

    @extend_schema(
        parameters=[OpenApiParameter("kind", str, enum=CampaignKind.values)],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        kind = self.request.query_params.get("kind") or None
        if kind is not None and kind not in CampaignKind.values:
            raise ValidationError({"kind": [f"Must be one of: {', '.join(CampaignKind.values)}."]})
        return selectors.campaign_list(practice=self.request.practice, kind=kind)

    @extend_schema(request=CampaignSerializer, responses={201: CampaignOutputSerializer})
    def post(self, request):
        """Create a campaign from its JSON; answers 201 with the campaign and its ``id``."""
        data = _validated_campaign(_json_object(request.data))
        try:
            campaign = services.campaign_create(
                practice=request.practice, data=data, actor=actor_of(request)
            )
        except DjangoValidationError as error:
            raise _service_errors(error) from None
        return Response(services.campaign_as_json(campaign), status=status.HTTP_201_CREATED)


class CampaignDetailApi(CampaignApiView):
    """One campaign: read, replace (``PUT``), change some parts (``PATCH``), delete."""

    @extend_schema(responses=CampaignOutputSerializer)
    def get(self, request, campaign_id: int):
        return Response(services.campaign_as_json(self.get_campaign(campaign_id)))

    @extend_schema(request=CampaignSerializer, responses=CampaignOutputSerializer)
    def put(self, request, campaign_id: int):
        """Replace the campaign: validated in full, as when it is created."""
        campaign = self.get_campaign(campaign_id)
        data = _validated_campaign(_json_object(request.data), campaign=campaign)
        # What the JSON leaves out is gone after a replace, not kept from before.
        return self.update(campaign, {"goal": None, "send_at": None, **data})

    @extend_schema(request=CampaignSerializer(partial=True), responses=CampaignOutputSerializer)
    def patch(self, request, campaign_id: int):
        """Change the given parts only.

        Checks across parts (a goal needs more than one message, appointment merge fields
        need an appointment trigger) hold for the campaign as it would be, so the stored JSON
        with the patch applied is validated whole; only the patched parts are written.
        """
        campaign = self.get_campaign(campaign_id)
        patch = _json_object(request.data)
        merged = _validated_campaign(
            {**services.campaign_as_json(campaign), **patch}, campaign=campaign
        )
        return self.update(campaign, {name: merged[name] for name in patch if name in merged})

    def update(self, campaign: Campaign, data: dict) -> Response:
        try:
            campaign = services.campaign_update(
                campaign=campaign, data=data, actor=actor_of(self.request)
            )
        except DjangoValidationError as error:
            raise _service_errors(error) from None
        return Response(services.campaign_as_json(campaign))

    @extend_schema(responses={204: None})
    def delete(self, request, campaign_id: int):
        """Delete the campaign; one that enrolled anyone is archived instead (it stops and
        leaves this API, its messages and report stay). A sent blast answers 400."""
        try:
            services.campaign_delete(
                campaign=self.get_campaign(campaign_id), actor=actor_of(request)
            )
        except DjangoValidationError as error:
            raise _service_errors(error) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class CampaignSetEnabledApi(CampaignApiView):
    """``POST /campaigns/{id}/enable`` or ``/disable`` (the green/red bell)."""

    enabled: bool

    @extend_schema(request=None, responses=CampaignOutputSerializer)
    def post(self, request, campaign_id: int):
        try:
            campaign = services.campaign_set_enabled(
                campaign=self.get_campaign(campaign_id),
                enabled=self.enabled,
                actor=actor_of(request),
            )
        except DjangoValidationError as error:
            raise _service_errors(error) from None
        return Response(services.campaign_as_json(campaign))


class CampaignEnableApi(CampaignSetEnabledApi):
    enabled = True


class CampaignDisableApi(CampaignSetEnabledApi):
    enabled = False


class CampaignAudienceApi(CampaignApiView):
    """Who would enter the campaign if it ran at ``at``: the count and the first page."""

    @extend_schema(parameters=[AT_PARAMETER], responses=AudienceSerializer)
    def get(self, request, campaign_id: int):
        campaign = self.get_campaign(campaign_id)
        at = _instant(request, "at")
        patients = selectors.audience(campaign, at=at)
        return Response(
            {
                "at": at.isoformat(),
                "count": patients.count(),
                "results": list(patients.values(*AUDIENCE_FIELDS)[:AUDIENCE_PAGE_SIZE]),
            }
        )


class CampaignExplainApi(CampaignApiView):
    """Why a patient would or would not enter the campaign at ``at``, check by check."""

    @extend_schema(
        parameters=[
            OpenApiParameter("patient", str, required=True, description="external id"),
            AT_PARAMETER,
        ],
        responses=ExplainSerializer,
    )
    def get(self, request, campaign_id: int):
        campaign = self.get_campaign(campaign_id)
        external_id = query_param(request, "patient", parse_external_id)
        if not external_id:
            raise ValidationError({"patient": ["Give the patient's external id."]})
        at = _instant(request, "at")
        patient = get_object_or_404(
            patient_queryset(practice=request.practice), external_id=external_id
        )
        return Response(selectors.explain(campaign, patient, at=at))


class CampaignForecastApi(CampaignApiView):
    """What the campaign would send on each of the 7 local days from ``at`` (default now),
    from the data as it is now (``campaigns.forecast``)."""

    @extend_schema(parameters=[AT_PARAMETER], responses=ForecastSerializer)
    def get(self, request, campaign_id: int):
        campaign = self.get_campaign(campaign_id)
        at = _instant(request, "at")
        forecast = campaign_forecast(campaign, now=at)
        return Response(
            {
                "at": forecast.now.isoformat(),
                "continuous": forecast.continuous,
                "assumes_on": forecast.assumes_on,
                "total": forecast.total,
                "days": [
                    {
                        "date": day.day.isoformat(),
                        "count": day.count,
                        "sms": day.sms,
                        "email": day.email,
                        "skipped": day.skipped,
                        "expired": day.expired,
                        "possible": day.possible,
                        "times": [{"at": t.isoformat(), "count": n} for t, n in day.times],
                        "sample": [
                            {
                                "patient_external_id": send.patient.external_id,
                                "at": send.at.isoformat(),
                                "step": send.step,
                                "channel": send.channel,
                            }
                            for send in day.sample()
                        ],
                    }
                    for day in forecast.days
                ],
                "runs": [
                    {"at": run.at.isoformat(), "entering": run.entering} for run in forecast.runs
                ],
            }
        )
