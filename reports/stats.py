"""Statistics of the experiments report (DESIGN §5.9): the difference of two proportions with
its 95% confidence interval by Newcombe's hybrid score method, the minimum detectable
difference, and the plain sentence staff read.

Newcombe's method 10 (R. G. Newcombe, "Interval estimation for the difference between
independent proportions: comparison of eleven methods", Statistics in Medicine 17, 1998):
each proportion gets its Wilson score interval (l, u); for d = p1 - p2,

    lower = d - sqrt((p1 - l1)² + (u2 - p2)²)
    upper = d + sqrt((u1 - p1)² + (p2 - l2)²)

It keeps its coverage near 95% for small samples and rates near 0 or 1 (a booked rate of a
few percent is the common case here), where the textbook Wald interval fails, and it never
leaves [-1, 1].
"""

from __future__ import annotations

import math

# Two-sided 95%: the 97.5th percentile of the standard normal; 80% power: its 80th.
Z_95 = 1.959963984540054
Z_POWER_80 = 0.8416212335729143
# Below this many patients in an arm (or the control group) the report says it cannot tell.
MIN_PATIENTS = 30


def wilson(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` / ``n`` (no continuity correction)."""
    if n <= 0:
        raise ValueError("n must be positive")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_diff_ci(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """The 95% interval of p1 - p2 (x1/n1 minus x2/n2), Newcombe's hybrid score method."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1)
    l2, u2 = wilson(x2, n2)
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, lower), min(1.0, upper)


def min_detectable_diff(n1: int, n2: int, pooled_rate: float) -> float | None:
    """The smallest true difference of rates these group sizes would detect with 80% power at
    the two-sided 5% level, around ``pooled_rate``; None while it cannot be said (an empty
    group, or no outcome at all yet)."""
    if n1 <= 0 or n2 <= 0 or not 0 < pooled_rate < 1:
        return None
    return (Z_95 + Z_POWER_80) * math.sqrt(pooled_rate * (1 - pooled_rate) * (1 / n1 + 1 / n2))


def _points(fraction: float) -> str:
    return f"{abs(fraction) * 100:.1f}"


def _signed(fraction: float) -> str:
    value = round(fraction * 100, 1)
    return f"{value:.1f}".replace("-", "\u2212") if value else "0.0"  # a true minus sign


def difference_sentence(
    *,
    who: str,
    verb: str,
    x1: int,
    n1: int,
    x2: int,
    n2: int,
) -> str:
    """The plain sentence for arm (x1 of n1) against the control group (x2 of n2):
    "Patients who got variant B booked 6.1 points more often than the control group (95% CI
    2.0 to 10.2; 1,204 vs 301 patients)." — or that it cannot tell yet."""
    if n1 < MIN_PATIENTS or n2 < MIN_PATIENTS:
        return "Not enough patients yet to tell."
    d = x1 / n1 - x2 / n2
    low, high = newcombe_diff_ci(x1, n1, x2, n2)
    sizes = f"{n1:,} vs {n2:,} patients"
    interval = f"95% CI {_signed(low)} to {_signed(high)}"
    if round(d * 100, 1) == 0:
        how = f"{verb} as often as the control group"
    else:
        how = (
            f"{verb} {_points(d)} points {'more' if d > 0 else 'less'} often than the control group"
        )
    if low > 0 or high < 0:
        return f"{who} {how} ({interval}; {sizes})."
    return f"{who} {how}, which may be chance ({interval}; {sizes})."
