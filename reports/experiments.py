"""The experiments part of a campaign report (DESIGN §5.9), read from ``ArmDayStat``: per
experiment period, per arm, the patients who entered in the range and what they did, and for
each arm the difference from the control group with Newcombe's 95% interval, the minimum
detectable difference and the plain sentence.

Numbers are rounded here (rates and differences to 4 decimals, money to cents), once, so the
page, the API and the CSV carry the same figures.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Sum

from campaigns.experiments.arms import HOLDOUT, TREATMENT
from campaigns.experiments.periods import campaign_experiment_config
from campaigns.models import Campaign, ExperimentPeriod
from reports.models import ArmDayStat
from reports.stats import difference_sentence, min_detectable_diff, newcombe_diff_ci

COUNTS = ["enrolled", "sent", "delivered", "clicked", "booked", "visited"]
PLACES = 4
NONE_TEXT = "\u2013"  # an en dash: nothing to show yet


def _percent_text(rate: float | None) -> str:
    return f"{rate * 100:.1f}%" if rate is not None else NONE_TEXT


def _points_text(fraction: float) -> str:
    return f"{fraction * 100:+.1f}".replace("-", "\u2212")


def _diff_text(diff: float | None, ci: list[float] | None) -> str:
    if diff is None or ci is None:
        return NONE_TEXT
    low, high = (f"{v * 100:.1f}".replace("-", "\u2212") for v in ci)
    return f"{_points_text(diff)} pts ({low} to {high})"


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, PLACES) if whole else None


@dataclass
class ArmReport:
    arm: str
    enrolled: int = 0
    sent: int = 0
    delivered: int = 0
    clicked: int = 0
    booked: int = 0
    visited: int = 0
    revenue: Decimal = Decimal("0.00")
    booked_rate: float | None = None
    visited_rate: float | None = None
    # Against the control group (None for the control group, or without one).
    booked_rate_diff: float | None = None
    visited_rate_diff: float | None = None
    booked_rate_diff_ci95: list[float] | None = None
    visited_rate_diff_ci95: list[float] | None = None
    booked_min_detectable_diff: float | None = None
    visited_min_detectable_diff: float | None = None
    booked_sentence: str = ""
    visited_sentence: str = ""

    @property
    def label(self) -> str:
        if self.arm == HOLDOUT:
            return "Control group (held out)"
        if self.arm == TREATMENT:
            return "Got the messages"
        return f"Variant {self.arm}"

    # What the page shows: percentages and points.
    @property
    def booked_rate_text(self) -> str:
        return _percent_text(self.booked_rate)

    @property
    def visited_rate_text(self) -> str:
        return _percent_text(self.visited_rate)

    @property
    def booked_diff_text(self) -> str:
        return _diff_text(self.booked_rate_diff, self.booked_rate_diff_ci95)

    @property
    def visited_diff_text(self) -> str:
        return _diff_text(self.visited_rate_diff, self.visited_rate_diff_ci95)

    @property
    def booked_mdd_text(self) -> str:
        mdd = self.booked_min_detectable_diff
        return f"{mdd * 100:.1f} pts" if mdd is not None else NONE_TEXT

    @property
    def who(self) -> str:
        return (
            "Patients who got the messages"
            if self.arm == TREATMENT
            else f"Patients who got variant {self.arm}"
        )


@dataclass
class PeriodReport:
    number: int
    started_at: dt.datetime | None
    holdout_percent: int
    variants: list[dict]
    arms: list[ArmReport] = field(default_factory=list)

    @property
    def has_control(self) -> bool:
        return any(arm.arm == HOLDOUT for arm in self.arms)


def _compare(arm: ArmReport, control: ArmReport) -> None:
    """Fill ``arm``'s differences from the control group."""
    n1, n2 = arm.enrolled, control.enrolled
    for outcome, verb in (("booked", "booked"), ("visited", "visited")):
        x1, x2 = getattr(arm, outcome), getattr(control, outcome)
        if n1 and n2:
            setattr(arm, f"{outcome}_rate_diff", round(x1 / n1 - x2 / n2, PLACES))
            low, high = newcombe_diff_ci(x1, n1, x2, n2)
            setattr(arm, f"{outcome}_rate_diff_ci95", [round(low, PLACES), round(high, PLACES)])
            mdd = min_detectable_diff(n1, n2, (x1 + x2) / (n1 + n2))
            setattr(
                arm,
                f"{outcome}_min_detectable_diff",
                round(mdd, PLACES) if mdd is not None else None,
            )
        setattr(
            arm,
            f"{outcome}_sentence",
            difference_sentence(who=arm.who, verb=verb, x1=x1, n1=n1, x2=x2, n2=n2),
        )


def _order(arm: str) -> tuple[int, str]:
    return (0 if arm == HOLDOUT else 1 if arm == TREATMENT else 2, arm)


def experiment_report(
    campaign: Campaign, *, date_from: dt.date, date_to: dt.date
) -> list[PeriodReport]:
    """Every experiment period with patients who entered in [date_from, date_to] (local
    dates), oldest first; without any, the current period with its arms at zero when the
    campaign runs an experiment, else nothing."""
    sums = (
        ArmDayStat.objects.filter(campaign=campaign, day__gte=date_from, day__lte=date_to)
        .values("period", "arm")
        .annotate(**{name: Sum(name) for name in [*COUNTS, "revenue"]})
        .order_by("period", "arm")
    )
    configs = {p.number: p for p in ExperimentPeriod.objects.filter(campaign=campaign)}
    periods: dict[int, PeriodReport] = {}

    def period_of(number: int) -> PeriodReport:
        if number not in periods:
            config = configs.get(number)
            periods[number] = PeriodReport(
                number=number,
                started_at=config.started_at if config else None,
                holdout_percent=config.holdout_percent if config else 0,
                variants=config.variants if config else [],
            )
        return periods[number]

    for row in sums:
        arm = ArmReport(
            arm=row["arm"], revenue=Decimal(row["revenue"] or 0).quantize(Decimal("0.01"))
        )
        for name in COUNTS:
            setattr(arm, name, row[name] or 0)
        period_of(row["period"]).arms.append(arm)
    if not periods:
        holdout, variants = campaign_experiment_config(campaign)
        if not holdout and not variants:
            return []
        current = period_of(campaign.experiment_period)
        names = ([HOLDOUT] if holdout else []) + ([n for n, _ in variants] or [TREATMENT])
        current.arms = [ArmReport(arm=name) for name in names]
    for period in periods.values():
        period.arms.sort(key=lambda a: _order(a.arm))
        control = next((a for a in period.arms if a.arm == HOLDOUT), None)
        for arm in period.arms:
            arm.booked_rate = _rate(arm.booked, arm.enrolled)
            arm.visited_rate = _rate(arm.visited, arm.enrolled)
            if control is not None and arm is not control:
                _compare(arm, control)
    return [periods[n] for n in sorted(periods)]


def arm_json(arm: ArmReport) -> dict:
    """An arm as the API and the CSV carry it (DESIGN §5.9's names)."""
    data = {
        "arm": arm.arm,
        "enrolled": arm.enrolled,
        "sent": arm.sent,
        "delivered": arm.delivered,
        "clicked": arm.clicked,
        "booked": arm.booked,
        "visited": arm.visited,
        "revenue": str(arm.revenue),
        "booked_rate": arm.booked_rate,
        "visited_rate": arm.visited_rate,
    }
    if arm.arm != HOLDOUT:
        data |= {
            "booked_rate_diff": arm.booked_rate_diff,
            "booked_rate_diff_ci95": arm.booked_rate_diff_ci95,
            "visited_rate_diff": arm.visited_rate_diff,
            "visited_rate_diff_ci95": arm.visited_rate_diff_ci95,
            "booked_min_detectable_diff": arm.booked_min_detectable_diff,
            "visited_min_detectable_diff": arm.visited_min_detectable_diff,
            "booked_sentence": arm.booked_sentence,
            "visited_sentence": arm.visited_sentence,
        }
    return data
