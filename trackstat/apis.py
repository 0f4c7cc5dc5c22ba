"""API endpoints of the tenancy core."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from trackstat.api_auth import actor_of
from trackstat.events import events_page, webhook_endpoint_create, webhook_endpoint_delete
from trackstat.models import EventType, Practice, Role, WebhookEndpoint


class PracticeOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Practice
        fields = ["id", "name", "slug", "time_zone", "phone", "sms_from", "email_from"]


@extend_schema(responses=PracticeOutputSerializer)
@api_view(["GET"])
def practice_detail_api(request):
    """The practice this API key (or browser session) works in."""
    return Response(PracticeOutputSerializer(request.practice).data)


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
