"""The change analysis on data with a known correlation: exact small cases by hand, and a
large bivariate-normal sample whose population correlation is set (figures printed)."""

import math

import numpy as np
import pandas as pd
import pytest

from scoring.change import change_correlations, change_from_first, correlate, fisher_ci


def test_a_small_case_by_hand() -> None:
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    y = [2.0, 1.0, 4.0, 3.0, 5.0]
    result = correlate(x, y)
    # mean 3 each; sum of products of deviations 8, sums of squares 10 and 10: r = 0.8.
    assert result.n == 5
    assert result.pearson_r == pytest.approx(0.8, abs=1e-12)
    # The ranks are the values: rho = 0.8 too.
    assert result.spearman_r == pytest.approx(0.8, abs=1e-12)
    z, half = math.atanh(0.8), 1.959963984540054 / math.sqrt(2)
    assert result.pearson_ci_low == pytest.approx(math.tanh(z - half), abs=1e-12)
    assert result.pearson_ci_high == pytest.approx(math.tanh(z + half), abs=1e-12)
    assert (round(result.pearson_ci_low, 4), round(result.pearson_ci_high, 4)) == (-0.2796, 0.9862)
    s_half = 1.959963984540054 * math.sqrt(1.06 / 2)
    assert result.spearman_ci_low == pytest.approx(math.tanh(z - s_half), abs=1e-12)


def test_edges() -> None:
    assert correlate([1, 2, 3, 4], [2, 4, 6, 8]).pearson_r == pytest.approx(1.0)
    assert fisher_ci(1.0, 10) == (1.0, 1.0)
    assert all(math.isnan(v) for v in fisher_ci(0.5, 3))
    assert math.isnan(correlate([1, 2], [1, 2]).pearson_r)
    assert math.isnan(correlate([1, 1, 1, 1], [1, 2, 3, 4]).pearson_r)
    nan_pairs = correlate([1, 2, float("nan"), 4, 5], [1, 3, 2, float("nan"), 6])
    assert nan_pairs.n == 3


@pytest.mark.parametrize("rho", [-0.5, 0.3])
def test_a_known_population_correlation(rho: float) -> None:
    rng = np.random.default_rng(11)
    n = 400
    x = rng.standard_normal(n)
    y = rho * x + math.sqrt(1 - rho * rho) * rng.standard_normal(n)
    result = correlate(x, y)
    print(
        f"\nknown rho={rho}, n={n}: pearson r={result.pearson_r:.4f} "
        f"[{result.pearson_ci_low:.4f}, {result.pearson_ci_high:.4f}] p={result.pearson_p:.3g}; "
        f"spearman rho={result.spearman_r:.4f} "
        f"[{result.spearman_ci_low:.4f}, {result.spearman_ci_high:.4f}] p={result.spearman_p:.3g}"
    )
    # Within 4 standard errors ((1 - rho^2) / sqrt(n)); the intervals' calibration is the
    # coverage test's job (one interval misses 1 time in 20).
    assert abs(result.pearson_r - rho) < 4 * (1 - rho * rho) / math.sqrt(n)
    # Spearman's rho of a bivariate normal is (6/pi) asin(rho/2).
    expected = 6 / math.pi * math.asin(rho / 2)
    assert abs(result.spearman_r - expected) < 4 * (1 - expected * expected) / math.sqrt(n)
    assert result.pearson_p < 1e-6 and result.spearman_p < 1e-6


def test_coverage_of_the_fisher_interval_is_about_95_percent() -> None:
    rng = np.random.default_rng(5)
    rho, n, runs = 0.4, 30, 2000
    spearman_rho = 6 / math.pi * math.asin(rho / 2)
    hits = spearman_hits = 0
    for _ in range(runs):
        x = rng.standard_normal(n)
        y = rho * x + math.sqrt(1 - rho * rho) * rng.standard_normal(n)
        result = correlate(x, y)
        hits += result.pearson_ci_low < rho < result.pearson_ci_high
        spearman_hits += result.spearman_ci_low < spearman_rho < result.spearman_ci_high
    print(
        f"\nFisher 95 % CI coverage, rho={rho}, n={n}, {runs} samples: "
        f"Pearson {hits / runs:.3f}, Spearman {spearman_hits / runs:.3f}"
    )
    assert 0.93 < hits / runs < 0.97
    assert 0.93 < spearman_hits / runs < 0.97


def test_change_from_the_first_visit_per_arm() -> None:
    # Two arms; MADRS falls by 2 x the rise in m1_lr_good in patients (r = -1), and is
    # unrelated in controls (by construction, r = 0 exactly).
    rows = []
    for p in range(8):
        arm = "patients" if p < 4 else "controls"
        gain = [0.1, 0.2, 0.3, 0.4][p % 4]
        madrs_drop = 20 * gain if arm == "patients" else [1.0, -1.0, -1.0, 1.0][p % 4]
        rows.append((p, arm, "baseline", 0, 30.0, 0.5, 10.0))
        rows.append((p, arm, "day 1", 1, 30.0 - madrs_drop, 0.5 + gain, 10.0 + gain))
    frame = pd.DataFrame(
        rows,
        columns=[
            "participant",
            "arm",
            "timepoint",
            "timepoint_order",
            "madrs",
            "m1_lr_good",
            "update_good",
        ],
    )
    changes = change_from_first(frame, outcome="madrs", measures=["m1_lr_good", "update_good"])
    assert len(changes) == 8
    assert changes.loc[changes.participant == 2, "d_madrs"].item() == pytest.approx(-6.0)
    assert changes.loc[changes.participant == 2, "d_m1_lr_good"].item() == pytest.approx(0.3)
    result = change_correlations(changes, outcome="madrs", measures=["m1_lr_good"])
    by_arm = {r["arm"]: r for r in result}
    assert by_arm["patients"]["pearson_r"] == pytest.approx(-1.0)
    assert by_arm["patients"]["timepoint"] == "day 1"
    assert by_arm["controls"]["pearson_r"] == pytest.approx(0.0, abs=1e-12)
    assert by_arm["controls"]["n"] == 4


def test_a_participant_without_a_first_madrs_starts_at_their_first_rated_visit() -> None:
    frame = pd.DataFrame(
        [
            (1, "a", "t0", 0, float("nan"), 0.1),
            (1, "a", "t1", 1, 20.0, 0.3),
            (1, "a", "t2", 2, 14.0, 0.6),
        ],
        columns=["participant", "arm", "timepoint", "timepoint_order", "madrs", "m1_lr_good"],
    )
    changes = change_from_first(frame, outcome="madrs", measures=["m1_lr_good"])
    assert changes[["timepoint", "d_madrs"]].values.tolist() == [["t2", -6.0]]
    assert changes["d_m1_lr_good"].item() == pytest.approx(0.3)
