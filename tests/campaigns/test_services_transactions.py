"""Campaigns' top-level actions commit on their own (``transaction.atomic(durable=True)``):
called inside another transaction they refuse before changing anything, so no caller can
hold a campaign's lock, or a half-done archive, past the action. Creating a campaign is the
exception: demo seeding composes campaigns in one transaction."""

from __future__ import annotations

import pytest
from django.db import transaction

from campaigns import services
from campaigns.language.spec import CampaignSerializer
from campaigns.models import BlastExclusion, Campaign, MessageTemplate, TemplateFolder
from tests.factories import PatientFactory, PracticeFactory

pytestmark = pytest.mark.django_db

NESTED = "A durable atomic block cannot be nested within another atomic block."


def _campaign(practice, **data) -> Campaign:
    serializer = CampaignSerializer(
        data={
            "name": "Open house",
            "kind": "blast",
            "messages": [{"channel": "sms", "body": "Join us"}],
            **data,
        }
    )
    assert serializer.is_valid(), serializer.errors
    return services.campaign_create(practice=practice, data=serializer.validated_data, actor=None)


@pytest.fixture
def blast():
    return _campaign(PracticeFactory())


def test_a_campaign_is_created_inside_a_larger_transaction_too():
    practice = PracticeFactory()
    with transaction.atomic():
        _campaign(practice)
    assert Campaign.objects.filter(practice=practice).count() == 1


@pytest.mark.parametrize(
    "action",
    [
        lambda c: services.campaign_update(campaign=c, data={"name": "Changed"}, actor=None),
        lambda c: services.campaign_set_enabled(campaign=c, enabled=True, actor=None),
        lambda c: services.campaign_delete(campaign=c, actor=None),
        lambda c: services.blast_recipient_set(
            campaign=c, patient=PatientFactory(practice=c.practice), included=False, actor=None
        ),
    ],
    ids=["update", "set_enabled", "delete", "blast_recipient_set"],
)
def test_campaign_actions_refuse_to_run_inside_another_transaction(blast, action):
    with pytest.raises(RuntimeError, match=NESTED), transaction.atomic():
        action(blast)

    after = Campaign.objects.get(pk=blast.pk)
    assert (after.name, after.enabled, after.archived_at) == ("Open house", False, None)
    assert not BlastExclusion.objects.exists()
    # On its own, the same action goes through.
    action(blast)


def test_template_library_actions_refuse_to_run_inside_another_transaction():
    practice = PracticeFactory()
    with pytest.raises(RuntimeError, match=NESTED), transaction.atomic():
        services.template_folder_create(practice=practice, name="Recall")
    assert not TemplateFolder.objects.filter(practice=practice).exists()

    folder = services.template_folder_create(practice=practice, name="Recall")
    data = {"name": "Hi", "channel": "sms", "subject": "", "body": "Hello"}
    with pytest.raises(RuntimeError, match=NESTED), transaction.atomic():
        services.template_save(practice=practice, folder=folder, data=data)
    assert not MessageTemplate.objects.filter(practice=practice).exists()
    assert services.template_save(practice=practice, folder=folder, data=data).pk
