"""API endpoints of the tenancy core: the practice, and its messaging policy (DESIGN §5.8)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from trackstat.api_auth import actor_of
from trackstat.models import Practice, Role
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
