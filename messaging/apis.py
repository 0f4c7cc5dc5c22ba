"""``GET /api/v1/messages`` (DESIGN §4.1): the outbox, newest first."""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView

from messaging.models import MessageEvent, MessageStatus, OutboundMessage
from trackstat.api_errors import query_param
from trackstat.validators import parse_external_id, parse_int

MAX_ID = 2**63 - 1


def parse_id(value: str) -> int:
    """A row id from the query string: digits, within the bigint range."""
    return parse_int(value, minimum=1, maximum=MAX_ID)


class MessageEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = MessageEvent
        fields = ["status", "reason", "at", "source"]


class MessageSerializer(serializers.ModelSerializer):
    campaign = serializers.IntegerField(source="campaign_id", allow_null=True)
    step = serializers.IntegerField(source="step_position", allow_null=True)
    patient_external_id = serializers.CharField(
        source="patient.external_id", allow_null=True, default=None
    )
    history = MessageEventSerializer(source="events", many=True)

    class Meta:
        model = OutboundMessage
        fields = [
            "id",
            "campaign",
            "step",
            "patient_external_id",
            "channel",
            "to",
            "subject",
            "body",
            "status",
            "status_reason",
            "variant",
            "scheduled_for",
            "sent_at",
            "is_test",
            "history",
        ]


class MessageListApi(ListAPIView):
    serializer_class = MessageSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("campaign", int),
            OpenApiParameter("patient", str, description="The patient's external id"),
            OpenApiParameter("status", str, enum=MessageStatus.values),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        messages = (
            OutboundMessage.objects.filter(practice=self.request.practice)
            .select_related("patient")
            .prefetch_related(
                Prefetch("events", queryset=MessageEvent.objects.order_by("at", "id"))
            )
            .order_by("-created_at", "-id")
        )
        campaign = query_param(self.request, "campaign", parse_id)
        if campaign is not None:
            messages = messages.filter(campaign_id=campaign)
        patient = query_param(self.request, "patient", parse_external_id)
        if patient:
            messages = messages.filter(patient__external_id=patient)
        if params.get("status"):
            if params["status"] not in MessageStatus.values:
                raise ValidationError({"status": ["Not a message status."]})
            messages = messages.filter(status=params["status"])
        return messages
