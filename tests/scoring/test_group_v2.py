"""Group level, version 2: hierarchical fits, group BMS, reliability, one analysis.

Pure functions on data with known answers (PROTOCOL.md, "Group level, version 2").
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scipy import stats

from scoring.analysis import group_analysis
from scoring.bms import exceedance_probabilities, group_bms
from scoring.fitting import MODELS, fit_sessions, simulate_sessions, simulate_sessions_m0
from scoring.group import factor_levels, mixed_model
from scoring.hierarchical import (
    HB_COLUMNS,
    group_prior,
    hierarchical_fit,
    truncated_normal,
)
from scoring.reliability import icc_2_1, pearson, retest_icc, spearman_brown, split_half

# ---------------------------------------------------------------- reference levels


def test_factor_levels_one_rule() -> None:
    assert factor_levels(["trd", "ctl", "trd"], None, "arm") == ["ctl", "trd"]
    assert factor_levels(["trd", "ctl"], ["trd", "ctl", "extra"], "arm") == ["trd", "ctl"]
    with pytest.raises(ValueError, match=r"arm level\(s\) 'hc' are not in the arm order"):
        factor_levels(["hc", "ctl"], ["ctl"], "arm")


# ---------------------------------------------------------------- hierarchical


def test_group_prior_closed_form_with_equal_errors() -> None:
    # With one standard error s for every session, the type-II ML estimate is
    # mu = mean(b), tau^2 = mean((b - mu)^2) - s^2 (when positive).
    b = np.array([0.2, 0.5, 0.3, 0.8, 0.7, 0.4])
    s = np.full(6, 0.1)
    prior = group_prior(b, s, np.zeros(6, dtype=np.intp), 1)
    assert prior.mean[0] == pytest.approx(b.mean(), abs=1e-9)
    assert prior.sd[0] ** 2 == pytest.approx(b.var() - 0.01, abs=1e-8)
    assert prior.se[0] == pytest.approx(math.sqrt((b.var() - 0.01 + 0.01) / 6), abs=1e-8)


def test_truncated_normal_equals_scipy() -> None:
    mean = np.array([0.5, -0.3, 1.4, 0.02, 0.9, 5.0])
    sd = np.array([0.1, 0.2, 0.3, 0.05, 1.0, 0.5])
    got_mean, got_sd = truncated_normal(mean, sd)
    a, b = (0 - mean) / sd, (1 - mean) / sd
    assert got_mean == pytest.approx(stats.truncnorm.mean(a, b, mean, sd), abs=1e-9)
    assert got_sd == pytest.approx(stats.truncnorm.std(a, b, mean, sd), abs=1e-9)


def grouped_sessions(n: int, seed: int, sigma: float = 8.0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    arm = np.where(np.arange(n) % 2 == 0, "ctl", "trd")
    means = np.where(arm == "ctl", 0.6, 0.35)
    good = np.clip(means + rng.normal(0, 0.15, n), 0, 1)
    bad = np.clip(0.4 + rng.normal(0, 0.15, n), 0, 1)
    trials = simulate_sessions(n, 40, lr_good=good, lr_bad=bad, sigma=sigma, rng=rng)
    trials["arm"] = arm[trials["session"]]
    trials["timepoint"] = "base"
    return trials, good


def test_hierarchical_rates_beat_maximum_likelihood() -> None:
    trials, true_good = grouped_sessions(400, seed=4, sigma=12.0)
    hb = hierarchical_fit(trials)
    ml = fit_sessions(trials)
    assert list(hb.sessions.columns[: len(HB_COLUMNS)]) == list(HB_COLUMNS)
    hb_rmse = np.sqrt(np.mean((hb.sessions["hb_m1_lr_good"] - true_good) ** 2))
    ml_rmse = np.sqrt(np.mean((ml["m1_lr_good"] - true_good) ** 2))
    assert hb_rmse < 0.85 * ml_rmse
    assert hb.sessions[list(HB_COLUMNS)].min().min() >= 0.0
    assert hb.converged
    assert hb.sessions[["hb_m0_lr", "hb_m1_lr_good", "hb_m1_lr_bad"]].max().max() <= 1.0
    assert (hb.sessions["hb_m1_lr_good_sd"] > 0).all()
    means = hb.groups.set_index(["arm", "model", "parameter"])["mean"]
    assert means["ctl", "M1", "lr_good"] == pytest.approx(0.6, abs=0.03)
    assert means["trd", "M1", "lr_good"] == pytest.approx(0.35, abs=0.03)


def test_a_session_without_bad_news_has_no_bad_news_rate() -> None:
    trials, _ = grouped_sessions(40, seed=9)
    lonely = (trials["session"] == 0) & (trials["br"] > trials["e1"])
    trials = trials.loc[~lonely]
    hb = hierarchical_fit(trials)
    # Its data say nothing about bad news: no rate (as in the per-session fit), while
    # its good-news rate and its sd are there.
    assert math.isnan(hb.sessions.loc[0, "hb_m1_lr_bad"])
    assert math.isnan(hb.sessions.loc[0, "hb_m1_lr_bad_sd"])
    assert 0.0 < hb.sessions.loc[0, "hb_m1_lr_good"] < 1.0
    assert hb.sessions.loc[0, "hb_m1_lr_good_sd"] > 0.0
    row = hb.groups.set_index(["arm", "model", "parameter"]).loc["ctl", "M1", "lr_bad"]
    assert row["n_sessions"] == 19


# ---------------------------------------------------------------- group BMS


def test_exceedance_of_two_models_is_a_beta_tail() -> None:
    ep = exceedance_probabilities([7.5, 3.2])
    assert ep[0] == pytest.approx(stats.beta.sf(0.5, 7.5, 3.2), abs=1e-9)
    assert ep.sum() == pytest.approx(1.0, abs=1e-12)


def log_evidence(trials: pd.DataFrame) -> np.ndarray:
    fits = fit_sessions(trials)
    return -0.5 * fits[[f"{m.lower()}_bic" for m in MODELS]].to_numpy()


def test_bms_finds_m1_in_asymmetric_sessions() -> None:
    rng = np.random.default_rng(13)
    asymmetry = rng.uniform(0.21, 0.4, 30) * rng.choice([-1.0, 1.0], 30)
    scaling = rng.uniform(0.35, 0.6, 30)
    trials = simulate_sessions(
        30, 40, lr_good=scaling + asymmetry / 2, lr_bad=scaling - asymmetry / 2, sigma=8.0, rng=rng
    )
    result = group_bms(log_evidence(trials), MODELS)
    assert result.n_sessions == 30
    assert result.protected_exceedance[1] >= 0.95
    assert max(result.expected_frequencies) == result.expected_frequencies[1]
    assert sum(result.protected_exceedance) == pytest.approx(1.0, abs=1e-9)


def test_bms_picks_m0_in_symmetric_sessions() -> None:
    rng = np.random.default_rng(14)
    trials = simulate_sessions_m0(30, 40, lr=rng.uniform(0.3, 0.7, 30), sigma=8.0, rng=rng)
    result = group_bms(log_evidence(trials), MODELS)
    assert np.argmax(result.protected_exceedance) == 0
    assert result.protected_exceedance[0] >= 0.95


def test_bms_without_evidence_is_the_null() -> None:
    # Equal evidence for every model: the frequencies are most likely equal, so
    # the omnibus risk is high and the protected exceedances near 1/K.
    result = group_bms(np.zeros((20, 3)), MODELS)
    assert result.bor > 0.9
    assert result.protected_exceedance == pytest.approx([1 / 3] * 3, abs=0.05)
    assert result.expected_frequencies == pytest.approx([1 / 3] * 3, abs=1e-9)


# ---------------------------------------------------------------- reliability


def test_icc_2_1_of_shrout_and_fleiss_table_2() -> None:
    # Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges. Their mean
    # squares: BMS 11.24, JMS 32.49, EMS 1.02, so ICC(2,1) =
    # (11.24 - 1.02) / (11.24 + 3 * 1.02 + 4 * (32.49 - 1.02) / 6) = 0.29.
    table = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    assert icc_2_1(table) == pytest.approx(0.2898, abs=5e-4)
    # By hand in exact fractions: sums of squares 1349/24 (targets), 2339/24
    # (judges), 367/24 (error); BMS 1349/120, JMS 2339/72, EMS 367/360, which
    # give ICC(2,1) = 184/635.
    assert icc_2_1(table) == pytest.approx(184 / 635, abs=1e-14)


def test_spearman_brown_and_pearson() -> None:
    assert spearman_brown(0.5) == pytest.approx(2 / 3, abs=1e-15)
    r, n = pearson([1.0, 2.0, 3.0, np.nan, 5.0], [2.0, 4.0, 7.0, 1.0, np.nan])
    assert n == 3
    assert r == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 7])[0, 1], abs=1e-15)


def test_split_half_scores_each_half_with_the_session_formula() -> None:
    rows = []
    # Three sessions; odd-ranked trials (positions 1, 3, 5, 7) and even-ranked
    # (2, 4, 6, 8) each hold two good and two bad trials. The updates are set
    # so that the halves' update biases are known.
    biases = {"s1": (4.0, 6.0), "s2": (1.0, 2.0), "s3": (8.0, 7.0)}
    for session, (first, second) in biases.items():
        for position in range(1, 9):
            good = position in (1, 2, 5, 6)
            bias = first if position % 2 == 1 else second
            update = 10.0 + (bias if good else 0.0)
            e1 = 50.0
            br = e1 - 30 if good else e1 + 30
            e2 = e1 - update if good else e1 + update
            rows.append((session, f"e{position}", position, e1, br, e2))
    trials = pd.DataFrame(rows, columns=["session", "event", "block1_position", "e1", "br", "e2"])
    trials["arm"] = "ctl"
    trials["timepoint"] = "base"
    trials["participant"] = trials["session"]
    shuffled = trials.sample(frac=1.0, random_state=3)
    result = {r["measure"]: r for r in split_half(shuffled)}
    r = np.corrcoef([4, 1, 8], [6, 2, 7])[0, 1]
    assert result["update_bias"]["r"] == pytest.approx(r, abs=1e-12)
    assert result["update_bias"]["split_half"] == pytest.approx(2 * r / (1 + r), abs=1e-12)
    assert result["update_bias"]["n_sessions"] == 3


def test_retest_icc_pairs_participants_seen_at_both() -> None:
    scores = pd.DataFrame(
        {
            "participant": ["a", "a", "b", "b", "c", "c", "d"],
            "timepoint": ["t1", "t2", "t1", "t2", "t1", "t2", "t1"],
            "update_bias": [1.0, 2.0, 5.0, 4.0, 9.0, 11.0, 3.0],
        }
    )
    (row,) = retest_icc(scores, timepoint_order=["t1", "t2"])
    assert row["timepoints"] == ["t1", "t2"]
    assert row["n_participants"] == 3
    assert row["icc"] == pytest.approx(icc_2_1([[1, 2], [5, 4], [9, 11]]), abs=1e-15)


# ---------------------------------------------------------------- one analysis


def small_study(seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for p in range(8):
        arm = ("ctl", "trd")[p % 2]
        for t, timepoint in enumerate(("base", "4h")):
            session = simulate_sessions(
                1, 16, lr_good=0.6 if arm == "ctl" else 0.4, lr_bad=0.4, sigma=6.0, rng=rng
            )
            session["session"] = f"p{p}-{timepoint}"
            session["participant"] = f"p{p}"
            session["arm"] = arm
            session["timepoint"] = timepoint
            session["block1_position"] = rng.permutation(16) + 1
            session["e1"] = session["e1"] + t  # the two visits differ
            frames.append(session)
    return pd.concat(frames, ignore_index=True)


STUDY = small_study()
FIT = mixed_model(STUDY, timepoint_order=["base", "4h"])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_shuffling_rows_never_changes_a_fit(seed: int) -> None:
    shuffled = STUDY.sample(frac=1.0, random_state=seed % (2**32)).reset_index(drop=True)
    refit = mixed_model(shuffled, timepoint_order=["base", "4h"])
    pd.testing.assert_frame_equal(refit.coefficients, FIT.coefficients, check_exact=True)
    assert (
        refit.reference_levels
        == FIT.reference_levels
        == {
            "valence": "bad",
            "arm": "ctl",
            "timepoint": "base",
        }
    )
    hb = hierarchical_fit(STUDY).sessions
    pd.testing.assert_frame_equal(
        hierarchical_fit(shuffled).sessions.loc[hb.index], hb, check_exact=True
    )


def test_group_analysis_document() -> None:
    document = group_analysis(STUDY, timepoint_order=["base", "4h"]).to_dict()
    assert document["reference_levels"] == {"valence": "bad", "arm": "ctl", "timepoint": "base"}
    assert document["reference_levels_from"] == "given order"
    assert [(g["arm"], g["timepoint"]) for g in document["group_summary"]] == [
        ("ctl", "base"),
        ("ctl", "4h"),
        ("trd", "base"),
        ("trd", "4h"),
    ]
    coefficient = document["mixed_model"]["coefficients"][0]
    assert list(coefficient) == [
        "term",
        "estimate",
        "std_error",
        "df",
        "t_value",
        "p_value",
        "ci_low",
        "ci_high",
    ]
    selection = document["model_selection"][0]
    assert set(selection) >= {
        "models",
        "expected_frequencies",
        "exceedance",
        "protected_exceedance",
    }
    assert selection["n_sessions"] == 4
    reliability = document["reliability"]
    assert {r["measure"] for r in reliability} >= {"update_bias", "m1_lr_good", "m1_lr_bad"}
    assert all(r["n_sessions"] == 4 for r in reliability if r["measure"] != "update_bias_ee")
    # update_bias_ee (score version 2) is NaN in a half whose valence has under 2 trials
    # or a constant EE, so it may pair fewer sessions.
    assert all(0 <= r["n_sessions"] <= 4 for r in reliability if r["measure"] == "update_bias_ee")
    retest = document["test_retest"]
    assert all(r["timepoints"] == ["base", "4h"] and r["n_participants"] == 8 for r in retest)
