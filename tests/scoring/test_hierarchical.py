"""Hierarchical fits of M0, M1 and M2 (scoring.hierarchical; PROTOCOL.md "Group level, version 2").

Recovery on simulated data with fixed seeds: the hierarchical M1 rates beat per-session
maximum likelihood, the posterior sds cover the true rates, the group means are near the
groups' true means with intervals that cover them, M2's parameters all have group priors,
the study's lr_max bounds every rate, and row order never changes a fit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scoring.fitting import K_BOUNDS, fit_sessions, simulate_sessions
from scoring.hierarchical import (
    GROUP_COLUMNS,
    HB_COLUMNS,
    HB_EXTRA_COLUMNS,
    HierarchicalFit,
    hierarchical_fit,
    normal_normal_shrinkage,
)

N_PER_GROUP = 120
TRUE_MEANS = {"ctl": (0.6, 0.4), "trd": (0.35, 0.45)}


def adaptive_sessions(
    lr_good: np.ndarray, lr_bad: np.ndarray, rng: np.random.Generator, n_trials: int = 40
) -> pd.DataFrame:
    """The adaptive design (BR = E1 -+ 6..15), answer noise sd 8, as bench/bench_hierarchical.py."""
    n = lr_good.size
    e1 = rng.integers(18, 63, size=(n, n_trials))
    sign = rng.permuted(np.tile(np.repeat([-1, 1], n_trials // 2), (n, 1)), axis=1)
    br = e1 + sign * rng.integers(6, 16, size=(n, n_trials))
    rate = np.where(sign < 0, lr_good[:, None], lr_bad[:, None])
    e2 = np.clip(np.rint(e1 + rate * (br - e1) + rng.normal(0, 8.0, (n, n_trials))), 3, 77)
    return pd.DataFrame(
        {
            "session": np.repeat(np.arange(n), n_trials),
            "event": np.tile(np.arange(1, n_trials + 1), n),
            "e1": e1.ravel(),
            "br": br.ravel(),
            "e2": e2.ravel(),
        }
    )


def m1_study(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    arms = np.repeat(list(TRUE_MEANS), N_PER_GROUP)
    means = np.array([TRUE_MEANS[a] for a in arms])
    truth = np.clip(means + rng.normal(0.0, 0.15, means.shape), 0.0, 1.0)
    trials = adaptive_sessions(truth[:, 0], truth[:, 1], rng)
    trials["arm"] = arms[trials["session"]]
    trials["timepoint"] = "base"
    frame = pd.DataFrame({"arm": arms, "lr_good": truth[:, 0], "lr_bad": truth[:, 1]})
    return trials, frame


@pytest.fixture(scope="module")
def m1_fit() -> tuple[pd.DataFrame, pd.DataFrame, HierarchicalFit]:
    trials, truth = m1_study(seed=13)
    return trials, truth, hierarchical_fit(trials)


def rmse(estimate: object, truth: object) -> float:
    a = np.asarray(estimate, dtype=float)
    b = np.asarray(truth, dtype=float)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_columns_and_group_table(
    m1_fit: tuple[pd.DataFrame, pd.DataFrame, HierarchicalFit],
) -> None:
    _trials, _truth, hb = m1_fit
    assert list(hb.sessions.columns) == [*HB_COLUMNS, *HB_EXTRA_COLUMNS]
    assert list(hb.groups.columns) == list(GROUP_COLUMNS)
    assert hb.converged
    # Every parameter of every model, per group: M0 lr, sigma; M1 2 rates, sigma; M2 4.
    keys = set(zip(hb.groups["model"], hb.groups["parameter"], strict=True))
    assert keys == {
        ("M0", "lr"),
        ("M0", "sigma"),
        ("M1", "lr_good"),
        ("M1", "lr_bad"),
        ("M1", "sigma"),
        ("M2", "w_good"),
        ("M2", "w_bad"),
        ("M2", "k"),
        ("M2", "sigma"),
    }
    assert len(hb.groups) == 9 * 2
    assert (hb.groups["n_sessions"] == N_PER_GROUP).all()
    assert hb.groups["se"].notna().all() and (hb.groups["se"] > 0).all()
    assert np.allclose(
        hb.groups["ci_high"] - hb.groups["mean"], 1.959963984540054 * hb.groups["se"]
    )


def test_m1_recovery_beats_ml_and_the_normal_normal_baseline(
    m1_fit: tuple[pd.DataFrame, pd.DataFrame, HierarchicalFit],
) -> None:
    trials, truth, hb = m1_fit
    ml = fit_sessions(trials)
    for valence in ("good", "bad"):
        true_rate = truth[f"lr_{valence}"]
        ml_rmse = rmse(ml[f"m1_lr_{valence}"], true_rate)
        hb_rmse = rmse(hb.sessions[f"hb_m1_lr_{valence}"], true_rate)
        assert hb_rmse <= 0.8 * ml_rmse, (valence, hb_rmse, ml_rmse)
        x = (trials["br"] - trials["e1"]).to_numpy(dtype=float)
        mask = (x < 0) if valence == "good" else (x > 0)
        sxx = np.bincount(trials["session"][mask], weights=x[mask] ** 2, minlength=len(truth))
        se = ml["m1_sigma"].to_numpy() / np.sqrt(sxx)
        baseline = normal_normal_shrinkage(ml[f"m1_lr_{valence}"], se, truth["arm"])
        assert hb_rmse < rmse(baseline, true_rate), valence


def test_posterior_sds_cover_the_true_rates(
    m1_fit: tuple[pd.DataFrame, pd.DataFrame, HierarchicalFit],
) -> None:
    _trials, truth, hb = m1_fit
    for valence in ("good", "bad"):
        error = hb.sessions[f"hb_m1_lr_{valence}"].to_numpy() - truth[f"lr_{valence}"].to_numpy()
        sd = hb.sessions[f"hb_m1_lr_{valence}_sd"].to_numpy()
        coverage = float(np.mean(np.abs(error) <= 1.959964 * sd))
        assert 0.90 <= coverage <= 0.99, (valence, coverage)
        # The sds are those of 40 trials' data combined with the prior: 0.08-0.14 here.
        assert 0.07 < float(np.median(sd)) < 0.14


def test_group_means_near_the_true_means(
    m1_fit: tuple[pd.DataFrame, pd.DataFrame, HierarchicalFit],
) -> None:
    _trials, truth, hb = m1_fit
    table = hb.groups.set_index(["arm", "model", "parameter"])
    for arm in TRUE_MEANS:
        for valence in ("good", "bad"):
            row = table.loc[(arm, "M1", f"lr_{valence}")]
            sample_mean = float(truth.loc[truth["arm"] == arm, f"lr_{valence}"].mean())
            assert abs(row["mean"] - sample_mean) <= 0.03
            assert row["ci_low"] <= sample_mean <= row["ci_high"]
            # se of a mean of 120 sessions with spread 0.15 and noise 0.15: about 0.02.
            assert 0.01 < row["se"] < 0.03
    sigma = table.loc[("ctl", "M1", "sigma")]
    assert 7.0 < sigma["mean"] < 8.5  # answer noise sd 8


def test_row_order_never_changes_a_fit(
    m1_fit: tuple[pd.DataFrame, pd.DataFrame, HierarchicalFit],
) -> None:
    trials, _truth, hb = m1_fit
    shuffled = trials.sample(frac=1.0, random_state=5).reset_index(drop=True)
    again = hierarchical_fit(shuffled)
    pd.testing.assert_frame_equal(
        again.sessions.loc[hb.sessions.index], hb.sessions, check_exact=True
    )
    pd.testing.assert_frame_equal(again.groups, hb.groups, check_exact=True)


def test_m2_hierarchical_recovers_k_and_the_weights() -> None:
    rng = np.random.default_rng(21)
    n = 150
    k = rng.normal(1.0, 0.5, n)
    w_good = np.clip(rng.normal(0.4, 0.1, n), 0.05, 0.55)
    w_bad = np.clip(rng.normal(0.3, 0.1, n), 0.05, 0.55)
    trials = simulate_sessions(n, 40, lr_good=w_good, lr_bad=w_bad, k=k, sigma=8.0, rng=rng)
    hb = hierarchical_fit(trials)
    ml = fit_sessions(trials)
    for name, truth in (("k", k), ("w_good", w_good), ("w_bad", w_bad)):
        assert rmse(hb.sessions[f"hb_m2_{name}"], truth) < rmse(ml[f"m2_{name}"], truth), name
        assert (hb.sessions[f"hb_m2_{name}_sd"] > 0).all()
    assert hb.sessions["hb_m2_k"].between(*K_BOUNDS).all()
    assert hb.sessions[["hb_m2_w_good", "hb_m2_w_bad"]].stack().between(0.0, 1.0).all()
    table = hb.groups.set_index(["model", "parameter"])
    assert table.loc[("M2", "k"), "mean"] == pytest.approx(1.0, abs=0.5)
    assert table.loc[("M2", "w_good"), "mean"] == pytest.approx(0.4, abs=0.06)
    assert table.loc[("M2", "w_bad"), "mean"] == pytest.approx(0.3, abs=0.06)


def test_lr_max_bounds_every_rate() -> None:
    rng = np.random.default_rng(8)
    n = 60
    good = rng.normal(1.25, 0.1, n)  # learning rates above 1 (overshooting the base rate)
    bad = rng.normal(0.5, 0.1, n)
    trials = simulate_sessions(n, 40, lr_good=good, lr_bad=bad, sigma=6.0, rng=rng)
    bounded = hierarchical_fit(trials)  # lr_max 1
    wide = hierarchical_fit(trials, lr_max=1.5)
    rates = ["hb_m0_lr", "hb_m1_lr_good", "hb_m1_lr_bad", "hb_m2_w_good", "hb_m2_w_bad"]
    assert bounded.sessions[rates].max().max() <= 1.0
    assert wide.sessions[rates].max().max() <= 1.5
    assert bounded.sessions["hb_m1_lr_good"].min() > 0.9  # pressed against the bound
    assert wide.sessions["hb_m1_lr_good"].max() > 1.0  # only the wider bound lets it out
    means = wide.groups.set_index(["model", "parameter"])["mean"]
    # The answers' clipping to the scale censors overshoots: the per-session ML
    # rates (bounded to 1.5 too) are the reference.
    ml = fit_sessions(trials, lr_max=1.5)
    assert means["M1", "lr_good"] == pytest.approx(ml["m1_lr_good"].mean(), abs=0.03)
    assert means["M1", "lr_good"] > 1.1
    assert bounded.groups.set_index(["model", "parameter"])["mean"]["M1", "lr_good"] <= 1.0
    assert wide.lr_max == 1.5
    with pytest.raises(ValueError, match="lr_max must be a positive number"):
        hierarchical_fit(trials, lr_max=0.0)
