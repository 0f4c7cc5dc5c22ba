"""A patient's arm in a campaign's experiment, fixed at entry (DESIGN §5.9).

The arm is a pure function of (campaign, patient) and the experiment's configuration: a
SHA-256 of the two ids, never Python's ``hash()`` (salted per process), so every tick, worker
and process agrees, and a patient who enters again (a later occurrence) lands in the same arm
while the configuration stands. The holdout is decided first, on its own hash; the variant
weights then split the rest on another, so changing the holdout share does not reshuffle the
variants.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence

from django.db.models import OuterRef, Subquery

from campaigns.models import Campaign, Enrollment, MessageStep
from patients.models import Patient

HOLDOUT = "holdout"
TREATMENT = "treatment"
# What explain, the re-check and the pages say of a held-out enrollment.
HELD_OUT = "held out (control group)"
RESERVED_ARMS = (HOLDOUT, TREATMENT)
MAX_VARIANTS = 4
_CHUNK = 5000


def share(campaign_id: int, patient_id: int, purpose: str) -> float:
    """A number in [0, 1), the same in every process, for (campaign, patient, purpose)."""
    digest = hashlib.sha256(f"{purpose}:{campaign_id}:{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def variant_weights(steps: Iterable[MessageStep]) -> list[tuple[str, int]]:
    """The campaign's variants as (name, weight), from its first variant step (validation
    keeps every variant step's the same); empty when no step has variants."""
    for step in steps:
        if step.variants:
            return [(v["name"], v["weight"]) for v in step.variants]
    return []


def has_experiment(campaign: Campaign, steps: Iterable[MessageStep]) -> bool:
    return bool(campaign.holdout_percent) or any(step.variants for step in steps)


def arm_of(
    *,
    campaign_id: int,
    patient_id: int,
    holdout_percent: int,
    variants: Sequence[tuple[str, int]],
) -> str:
    """The arm of a patient entering the campaign: ``holdout`` for an expected
    ``holdout_percent`` % of patients, else a variant by weight, else ``treatment``."""
    if holdout_percent and share(campaign_id, patient_id, HOLDOUT) * 100 < holdout_percent:
        return HOLDOUT
    if not variants:
        return TREATMENT
    point = share(campaign_id, patient_id, "variant") * sum(w for _, w in variants)
    running = 0
    for name, weight in variants:
        running += weight
        if point < running:
            return name
    return variants[-1][0]


def arms_assign(campaign: Campaign, *, now: dt.datetime, steps: Sequence[MessageStep]) -> int:
    """Give the enrollments the campaign just made at ``now`` their arm, experiment period
    and paid_total snapshot; return how many. Runs in the enrolling transaction, so no tick
    ever sees one of them without its arm. Campaigns without an experiment cost nothing.

    One read of the new rows, then one UPDATE per arm (a few, whatever the audience size).
    """
    if not has_experiment(campaign, steps):
        return 0
    new = list(
        Enrollment.objects.filter(
            campaign_id=campaign.pk, entered_at=now, experiment_period__isnull=True
        ).values_list("pk", "patient_id")
    )
    variants = variant_weights(steps)
    groups: dict[str, list[int]] = defaultdict(list)
    for pk, patient_id in new:
        arm = arm_of(
            campaign_id=campaign.pk,
            patient_id=patient_id,
            holdout_percent=campaign.holdout_percent,
            variants=variants,
        )
        groups[arm].append(pk)
    paid = Subquery(Patient.objects.filter(pk=OuterRef("patient_id")).values("paid_total")[:1])
    for arm, ids in groups.items():
        for start in range(0, len(ids), _CHUNK):
            Enrollment.objects.filter(pk__in=ids[start : start + _CHUNK]).update(
                arm=arm,
                experiment_period=campaign.experiment_period,
                paid_total_at_entry=paid,
                report_pending=True,  # the report roll-up counts it into its arm
            )
    return len(new)


def step_variant(step: MessageStep, enrollment: Enrollment) -> dict | None:
    """The variant of ``step`` this enrollment is sent (None: not a variant step).

    Its arm when the step has a variant of that name; an enrollment that entered before the
    campaign had variants (arm ``treatment`` or none) gets one by the same stable hash.
    """
    if not step.variants:
        return None
    by_name = {v["name"]: v for v in step.variants}
    if enrollment.arm in by_name:
        return by_name[enrollment.arm]
    name = arm_of(
        campaign_id=step.campaign_id,
        patient_id=enrollment.patient_id,
        holdout_percent=0,
        variants=[(v["name"], v["weight"]) for v in step.variants],
    )
    return by_name[name]
