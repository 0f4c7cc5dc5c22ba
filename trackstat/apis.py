"""API endpoints of the tenancy core."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from trackstat.models import Practice


class PracticeOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Practice
        fields = ["id", "name", "slug", "time_zone", "phone", "sms_from", "email_from"]


@extend_schema(responses=PracticeOutputSerializer)
@api_view(["GET"])
def practice_detail_api(request):
    """The practice this API key (or browser session) works in."""
    return Response(PracticeOutputSerializer(request.practice).data)
