"""API endpoints of the tenancy core: the practice, and its messaging policy (DESIGN §5.8)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from trackstat.api_auth import actor_of
from trackstat.events import events_page, webhook_endpoint_create, webhook_endpoint_delete
from trackstat.models import EventType, Practice, Role, WebhookEndpoint
from trackstat.services import practice_policy_update


class PracticeOutputSerializer(serializers.ModelSerializer):
    messaging_policy = serializers.SerializerMethodField()
    postal_address = serializers.CharField(read_only=True)

    class Meta:
        model = Practice
        fields = [
            "id",
            "name",
            "slug",
            "time_zone",
            "phone",
            "sms_from",
            "email_from",
            "postal_address",
            "messaging_policy",
        ]

    def get_messaging_policy(self, practice: Practice) -> dict:
        """The policy in force: the practice's settings over the defaults."""
        return practice.policy


PracticePatchSerializer = inline_serializer(
    "PracticePatch",
    {
        "messaging_policy": serializers.DictField(
            help_text="Any of marketing_per_24h, marketing_per_7d, notice_per_24h, "
            "care_per_24h (a whole number or null), sms_marketing_requires_opt_in, "
            "state_rules (true or false); the keys given are merged, the others kept."
        )
    },
)


class PracticeApi(APIView):
    """The practice this API key (or browser session) works in; ``PATCH`` changes its
    messaging policy (Administrators, or the practice's API key), audited."""

    write_role = Role.ADMINISTRATOR

    @extend_schema(responses=PracticeOutputSerializer)
    def get(self, request):
        return Response(PracticeOutputSerializer(request.practice).data)

    @extend_schema(request=PracticePatchSerializer, responses=PracticeOutputSerializer)
    def patch(self, request):
        data = request.data
        if not isinstance(data, dict):
            raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(data) - {"messaging_policy"})
        if unknown:
            raise ValidationError(
                {name: ["Not a setting this endpoint changes."] for name in unknown}
            )
        try:
            practice = practice_policy_update(
                practice=request.practice,
                actor=actor_of(request),
                changes=data.get("messaging_policy", {}),
            )
        except DjangoValidationError as error:
            raise ValidationError({"messaging_policy": error.message_dict}) from None
        return Response(PracticeOutputSerializer(practice).data)


practice_detail_api = PracticeApi.as_view()


# --- Telling the EMR (DESIGN §4.1.1) --------------------------------------------------------


def _drf_errors(error: DjangoValidationError) -> ValidationError:
    if hasattr(error, "error_dict"):
        return ValidationError(error.message_dict)
    return ValidationError({"non_field_errors": error.messages})


class EventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.ChoiceField(choices=EventType.choices)
    created_at = serializers.DateTimeField()
    data = serializers.DictField()


class EventPageSerializer(serializers.Serializer):
    results = EventSerializer(many=True)
    next_cursor = serializers.CharField()


@extend_schema(
    parameters=[
        OpenApiParameter(
            "after",
            str,
            description="The `next_cursor` of the previous page (opaque); omit to start from "
            "the first event.",
        )
    ],
    responses=EventPageSerializer,
)
@api_view(["GET"])
def events_api(request):
    """The practice's events, oldest first, at most 100 a page (poll with `next_cursor`)."""
    try:
        page = events_page(practice=request.practice, after=request.query_params.get("after"))
    except DjangoValidationError as error:
        raise _drf_errors(error) from None
    return Response(page)


class WebhookInputSerializer(serializers.Serializer):
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())


class WebhookSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())


class WebhookListSerializer(serializers.Serializer):
    """The list shape of the API (every webhook on one page: a practice has at most 20)."""

    count = serializers.IntegerField()
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)
    results = WebhookSerializer(many=True)


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(help_text="Shown only in this answer; keep it.")


def _webhook_json(endpoint: WebhookEndpoint) -> dict:
    return {"id": endpoint.pk, "url": endpoint.url, "events": endpoint.events}


class WebhookListApi(APIView):
    """The practice's outbound webhooks (Administrators, or an API key)."""

    required_role = Role.ADMINISTRATOR

    @extend_schema(responses=WebhookListSerializer)
    def get(self, request):
        endpoints = WebhookEndpoint.objects.filter(practice=request.practice).order_by("pk")
        results = [_webhook_json(e) for e in endpoints]
        return Response({"count": len(results), "next": None, "previous": None, "results": results})

    @extend_schema(request=WebhookInputSerializer, responses={201: WebhookCreatedSerializer})
    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        try:
            endpoint, secret = webhook_endpoint_create(
                practice=request.practice,
                url=data.get("url"),
                events=data.get("events"),
                actor=actor_of(request),
            )
        except DjangoValidationError as error:
            raise _drf_errors(error) from None
        return Response({**_webhook_json(endpoint), "secret": secret}, status=201)


class WebhookDetailApi(APIView):
    required_role = Role.ADMINISTRATOR

    @extend_schema(responses={204: None})
    def delete(self, request, webhook_id: int):
        endpoint = get_object_or_404(WebhookEndpoint, pk=webhook_id, practice=request.practice)
        webhook_endpoint_delete(
            practice=request.practice, endpoint=endpoint, actor=actor_of(request)
        )
        return Response(status=204)
