"""Experiment periods (DESIGN §5.9): one configuration of holdout and variants each.

Changing the holdout share or the variants of a campaign that patients have entered under
the current configuration starts a new period: the enrollments so far keep their arms and
their period, and the report shows each period on its own, so no comparison mixes two
configurations. A variant cannot be removed while patients are in it (active enrollments in
that arm: their next variant step would have no text).
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError

from campaigns.models import Campaign, Enrollment, EnrollmentState, ExperimentPeriod

Config = tuple[int, tuple[tuple[str, int], ...]]


def experiment_config(holdout_percent: int, messages: list[dict]) -> Config:
    """(holdout share, the variants as (name, weight)) of a campaign's JSON messages."""
    for message in messages:
        if message.get("variants"):
            return holdout_percent or 0, tuple(
                (v["name"], v["weight"]) for v in message["variants"]
            )
    return holdout_percent or 0, ()


def campaign_experiment_config(campaign: Campaign) -> Config:
    steps = [{"variants": step.variants} for step in campaign.steps.all()]
    return experiment_config(campaign.holdout_percent, steps)


def variants_removal_check(campaign: Campaign, before: Config, after: Config) -> None:
    """Refuse to drop a variant that active enrollments are in (naming it and how many)."""
    removed = {name for name, _ in before[1]} - {name for name, _ in after[1]}
    if not removed:
        return
    counts = {
        arm: n
        for arm in sorted(removed)
        if (
            n := Enrollment.objects.filter(
                campaign=campaign, arm=arm, state=EnrollmentState.ACTIVE
            ).count()
        )
    }
    if counts:
        which = "; ".join(f"variant {arm} has {n} patient(s) in it" for arm, n in counts.items())
        raise ValidationError(
            {"messages": f"A variant cannot be removed while patients are in it: {which}."}
        )


def experiment_period_follow(
    campaign: Campaign, *, before: Config | None, now: dt.datetime
) -> None:
    """Keep the campaign's period in step with its (already saved) configuration.

    ``before`` is the configuration before the change (None: a new campaign). A changed
    configuration starts a new period when patients entered under the current one, and
    otherwise just replaces the current period's (it compared nobody yet).
    """
    after = campaign_experiment_config(campaign)
    if before == after:
        return
    if before is None and after == (0, ()):
        return  # a new campaign without an experiment
    if Enrollment.objects.filter(
        campaign=campaign, experiment_period=campaign.experiment_period
    ).exists():
        campaign.experiment_period += 1
        Campaign.objects.filter(pk=campaign.pk).update(experiment_period=campaign.experiment_period)
    ExperimentPeriod.objects.update_or_create(
        campaign=campaign,
        number=campaign.experiment_period,
        defaults={
            "practice_id": campaign.practice_id,
            "started_at": now,
            "holdout_percent": after[0],
            "variants": [{"name": n, "weight": w} for n, w in after[1]],
        },
    )
