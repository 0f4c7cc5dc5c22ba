"""What keeps a patient out of a campaign with ``exclude_recent_days`` (DESIGN §5.6).

A patient who was sent (or has queued) a message of *another drip* campaign of the practice in
the X times 24 hours before the run does not enter; blasts, test sends and Inbox replies do not
count. It holds within one tick too: a drip that enrolled the patient earlier in the same tick
has not queued its message yet, so its enrollment (active, no step done) counts as one.

The engine's audience (``campaigns.audience.query.audience_candidates``) excludes with these
querysets, and ``explain`` names the row that excludes from the same ones.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Q, QuerySet

from campaigns.audience.triggers import RunContext
from campaigns.experiments.arms import HOLDOUT
from campaigns.models import Campaign, CampaignKind, Enrollment, EnrollmentState
from messaging.models import SENT_STATUSES, MessageStatus, OutboundMessage

# Not sent yet, but on their way (``unknown``: the provider may have accepted it).
PENDING_STATUSES = [MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.UNKNOWN]


def _since(campaign: Campaign, at: dt.datetime, ctx: RunContext | None) -> dt.datetime:
    # Elapsed time (X times 24 hours), in UTC: across a DST change a local day is 23 or 25 hours.
    # From the run's context when there is one: the engine's compiled statements trace every
    # instant the context hands out (``campaigns.engine.compiled``).
    delta = dt.timedelta(days=campaign.exclude_recent_days)
    return ctx.before(delta) if ctx is not None else at.astimezone(dt.UTC) - delta


def recent_drip_messages(
    campaign: Campaign, *, at: dt.datetime, ctx: RunContext | None = None
) -> QuerySet[OutboundMessage]:
    """Messages of the practice's other drip campaigns sent in the X times 24 hours before ``at``,
    or still on their way (due in that time or later); for every patient."""
    since = _since(campaign, at, ctx)
    return (
        OutboundMessage.objects.filter(
            practice_id=campaign.practice_id,
            campaign__kind=CampaignKind.DRIP,
            enrollment__isnull=False,
            is_test=False,
        )
        .exclude(campaign_id=campaign.pk)
        .filter(
            Q(status__in=SENT_STATUSES, sent_at__gte=since)
            | Q(status__in=PENDING_STATUSES, scheduled_for__gte=since)
        )
    )


def pending_drip_enrollments(
    campaign: Campaign, *, at: dt.datetime, ctx: RunContext | None = None
) -> QuerySet[Enrollment]:
    """Enrollments in the practice's other drip campaigns made in the X times 24 hours before
    ``at`` whose first message is not in the outbox yet (within one tick: entered by a drip
    that ran before this one); for every patient."""
    return (
        Enrollment.objects.filter(
            practice_id=campaign.practice_id,
            campaign__kind=CampaignKind.DRIP,
            state=EnrollmentState.ACTIVE,
            steps_done=0,
            entered_at__gte=_since(campaign, at, ctx),
        )
        .exclude(campaign_id=campaign.pk)
        .exclude(arm=HOLDOUT)
    )  # the control group counts for none
