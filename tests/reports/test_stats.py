"""The experiments report's statistics against worked examples (DESIGN §5.9)."""

from __future__ import annotations

import math

import pytest

from reports.stats import (
    difference_sentence,
    min_detectable_diff,
    newcombe_diff_ci,
    wilson,
)

Z = 1.959963984540054


def test_newcombes_first_example_worked_by_hand():
    """Newcombe (1998), example (a): 56/70 against 48/80.

    By hand, with z = 1.96 (z² = 3.8415):

    Wilson for 56/70, p = 0.8: denominator 1 + 3.8415/70 = 1.05488; centre
    (0.8 + 3.8415/140) / 1.05488 = 0.82744 / 1.05488 = 0.78439; half-width
    1.96 · sqrt(0.8 · 0.2 / 70 + 3.8415 / 19600) / 1.05488 = 1.96 · sqrt(0.0022857 + 0.000196)
    / 1.05488 = 1.96 · 0.049817 / 1.05488 = 0.09256; so (0.69183, 0.87695).

    Wilson for 48/80, p = 0.6: denominator 1 + 3.8415/80 = 1.04802; centre
    (0.6 + 3.8415/160) / 1.04802 = 0.62401 / 1.04802 = 0.59542; half-width
    1.96 · sqrt(0.6 · 0.4 / 80 + 3.8415 / 25600) / 1.04802 = 1.96 · sqrt(0.003 + 0.00015006)
    / 1.04802 = 1.96 · 0.056125 / 1.04802 = 0.10496; so (0.49045, 0.70038).

    d = 0.8 - 0.6 = 0.2, and the interval (published: 0.0524 to 0.3339):

    lower = 0.2 - sqrt((0.8 - 0.69183)² + (0.70038 - 0.6)²)
          = 0.2 - sqrt(0.011701 + 0.010076) = 0.2 - 0.147570 = 0.05243
    upper = 0.2 + sqrt((0.87695 - 0.8)² + (0.6 - 0.49045)²)
          = 0.2 + sqrt(0.005921 + 0.012001) = 0.2 + 0.133873 = 0.33387
    """
    low1, high1 = wilson(56, 70)
    low2, high2 = wilson(48, 80)
    assert (round(low1, 4), round(high1, 4)) == (0.6918, 0.8770)
    assert (round(low2, 4), round(high2, 4)) == (0.4905, 0.7004)
    by_hand = (
        0.2 - math.sqrt((0.8 - low1) ** 2 + (high2 - 0.6) ** 2),
        0.2 + math.sqrt((high1 - 0.8) ** 2 + (0.6 - low2) ** 2),
    )
    low, high = newcombe_diff_ci(56, 70, 48, 80)
    assert (low, high) == pytest.approx(by_hand, abs=1e-12)
    # The hand computation above, to its five decimals.
    assert (low, high) == pytest.approx((0.05243, 0.33387), abs=1e-5)
    assert (low1, high1, low2, high2) == pytest.approx(
        (0.69183, 0.87695, 0.49045, 0.70038), abs=2e-5
    )
    # The published figures (Newcombe 1998, Table II, method 10).
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


@pytest.mark.parametrize(
    ("counts", "published"),
    [
        # Newcombe (1998) Table II, method 10: examples (b) to (f), the boundary cases.
        ((9, 10, 3, 10), (0.1705, 0.8090)),
        ((6, 7, 2, 7), (0.0582, 0.8062)),
        ((5, 56, 0, 29), (-0.0381, 0.1926)),
        ((0, 10, 0, 20), (-0.1611, 0.2775)),
        ((10, 10, 0, 20), (0.6791, 1.0000)),
    ],
)
def test_newcombes_other_published_examples(counts, published):
    low, high = newcombe_diff_ci(*counts)
    assert (round(low, 4), round(high, 4)) == published


def test_minimum_detectable_difference():
    # (1.96 + 0.8416) · sqrt(0.1 · 0.9 · (1/1000 + 1/250)) = 2.8016 · 0.021213 = 0.05943
    assert min_detectable_diff(1000, 250, 0.1) == pytest.approx(0.05943, abs=1e-5)
    assert min_detectable_diff(0, 250, 0.1) is None
    assert min_detectable_diff(100, 250, 0.0) is None


def test_the_plain_sentences():
    assert difference_sentence(
        who="Patients who got variant B", verb="booked", x1=300, n1=1204, x2=56, n2=301
    ) == (
        "Patients who got variant B booked 6.3 points more often than the control group "
        "(95% CI 1.0 to 11.0; 1,204 vs 301 patients)."
    )
    assert difference_sentence(
        who="Patients who got the messages", verb="visited", x1=50, n1=500, x2=12, n2=100
    ) == (
        "Patients who got the messages visited 2.0 points less often than the control group, "
        "which may be chance (95% CI \u221210.2 to 3.8; 500 vs 100 patients)."
    )
    assert (
        difference_sentence(who="X", verb="booked", x1=3, n1=20, x2=1, n2=300)
        == "Not enough patients yet to tell."
    )
