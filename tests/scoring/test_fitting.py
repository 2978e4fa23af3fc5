"""Model fits: known answers, parameter recovery, model recovery, the naive reference."""

import math

import numpy as np
import pandas as pd
import pytest

from scoring.fitting import (
    FIT_COLUMNS,
    MODELS,
    N_PARAMETERS,
    SIGMA_FLOOR,
    fit_sessions,
    fit_sessions_naive,
    simulate_sessions,
    simulate_sessions_m0,
)
from scoring.metrics import derive_trials

N_RECOVERY = 500


def noise_free(lr_good: float, lr_bad: float, k: float = 0.0, session: str = "S") -> pd.DataFrame:
    """Twelve trials whose E2 follows the model exactly (no rounding)."""
    errors = [-30.0, -25.0, -20.0, -15.0, -10.0, -5.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
    e1 = 40.0
    rows = []
    for i, error in enumerate(errors):
        rate = (lr_good if error < 0 else lr_bad) * (1 + k * abs(error) / 100)
        rows.append((session, i, e1, e1 + error, e1 + rate * error))
    return pd.DataFrame(rows, columns=["session", "event", "e1", "br", "e2"])


def test_noise_free_m1_data_gives_back_its_rates() -> None:
    fit = fit_sessions(noise_free(0.5, 0.3)).iloc[0]
    assert fit["m1_lr_good"] == pytest.approx(0.5, abs=1e-12)
    assert fit["m1_lr_bad"] == pytest.approx(0.3, abs=1e-12)
    assert fit["m1_scaling"] == pytest.approx(0.4, abs=1e-12)
    assert fit["m1_asymmetry"] == pytest.approx(0.2, abs=1e-12)
    assert fit["m1_sigma"] == SIGMA_FLOOR
    assert fit["m1_loglik"] == pytest.approx(-6 * math.log(2 * math.pi * 0.25), abs=1e-9)
    # M2 nests M1 at k = 0 and cannot do better than a perfect fit.
    assert (fit["m2_w_good"], fit["m2_w_bad"], fit["m2_k"]) == pytest.approx(
        (0.5, 0.3, 0.0), abs=1e-12
    )
    assert fit["best_model"] == "M1"


def test_noise_free_m0_and_m2_data() -> None:
    m0 = fit_sessions(noise_free(0.6, 0.6)).iloc[0]
    assert m0["m0_lr"] == pytest.approx(0.6, abs=1e-12)
    assert m0["best_model"] == "M0"
    m2 = fit_sessions(noise_free(0.4, 0.2, k=2.5)).iloc[0]
    # k comes from minimising the RSS, which is flat to second order at its
    # minimum: float rounding of the RSS leaves k good to ~sqrt(eps) only.
    assert m2["m2_k"] == pytest.approx(2.5, abs=1e-6)
    assert (m2["m2_w_good"], m2["m2_w_bad"]) == pytest.approx((0.4, 0.2), abs=1e-6)
    assert m2["best_model"] == "M2"


def test_rates_are_clipped_to_their_bounds() -> None:
    # Good news: overshoot past the base rate (slope 1.5); bad news: moves
    # away from it (slope -0.5). Clipping is exact for a 1-D convex quadratic.
    trials = pd.DataFrame(
        {
            "session": ["S"] * 4,
            "event": [1, 2, 3, 4],
            "e1": [50.0, 60.0, 20.0, 30.0],
            "br": [30.0, 40.0, 40.0, 50.0],
            "e2": [20.0, 30.0, 10.0, 20.0],
        }
    )
    fit = fit_sessions(trials).iloc[0]
    assert (fit["m1_lr_good"], fit["m1_lr_bad"]) == (1.0, 0.0)
    residual_sq = 0 + 0 + 100 + 100 + 100 + 100  # good: y - x = -10; bad: y = -10
    assert fit["m1_sigma"] == pytest.approx(math.sqrt(residual_sq / 4), abs=1e-12)
    assert fit["best_model"] is None  # four trials: no comparison (version 2)


def m2_rates(trials: pd.DataFrame, fit: pd.DataFrame) -> np.ndarray:
    """M2's fitted effective rate w_v (1 + k EE/100) on every valid trial."""
    derived = derive_trials(trials)
    valid = derived.loc[~derived["excluded"]]
    rows = fit.loc[valid["session"]]
    w = np.where(valid["valence"] == "good", rows["m2_w_good"], rows["m2_w_bad"])
    return w * (1 + rows["m2_k"].to_numpy() * valid["ee"].to_numpy(dtype=float) / 100)


def overshoot_trials() -> pd.DataFrame:
    """Good news moved 1.0 of the way at EE 10 and 1.2 of the way at EE 20; bad news
    0.5 of the way, at EE 10 twice.

    Unbounded, M2 fits it exactly with k = 2.5, w_good = 0.8 (rates 1.0 and 1.2)
    and w_bad = 0.4 (rate 0.5).
    """
    return pd.DataFrame(
        {
            "session": ["S"] * 4,
            "event": [1, 2, 3, 4],
            "e1": [50.0, 50.0, 20.0, 30.0],
            "br": [40.0, 30.0, 30.0, 40.0],
            "e2": [40.0, 26.0, 25.0, 35.0],
        }
    )


def test_m2_effective_rate_is_bounded_on_every_trial() -> None:
    # Rates 1.0 and 1.2 on good news cannot both be met under the bound: the
    # best feasible fit moves both to 1 (k = 0, w_good = 1), leaving residuals
    # 0 and 20 * 0.2 = 4 on good news; bad news fits exactly (w_bad = 0.5).
    trials = overshoot_trials()
    fit = fit_sessions(trials).iloc[0]
    assert (fit["m2_w_good"], fit["m2_w_bad"], fit["m2_k"]) == pytest.approx(
        (1.0, 0.5, 0.0), abs=1e-9
    )
    assert fit["m2_sigma"] == pytest.approx(math.sqrt(16 / 4), abs=1e-9)
    assert fit["m1_lr_good"] == 1.0  # the slope 580 / 500 clipped
    assert fit["m2_loglik"] == pytest.approx(fit["m1_loglik"], abs=1e-9)


def test_the_study_can_raise_the_learning_rate_bound() -> None:
    # With lr_max 1.5 the same session is met exactly (rates 1.0 and 1.2).
    fit = fit_sessions(overshoot_trials(), lr_max=1.5).iloc[0]
    assert fit["m1_lr_good"] == pytest.approx(580 / 500, abs=1e-12)
    assert fit["m1_lr_bad"] == pytest.approx(0.5, abs=1e-12)
    assert (fit["m2_w_good"], fit["m2_w_bad"], fit["m2_k"]) == pytest.approx(
        (0.8, 0.4, 2.5), abs=1e-6
    )
    assert fit["m2_sigma"] == SIGMA_FLOOR
    with pytest.raises(ValueError, match="lr_max"):
        fit_sessions(overshoot_trials(), lr_max=0.0)


def test_k_may_be_negative() -> None:
    fit = fit_sessions(noise_free(0.6, 0.4, k=-0.5)).iloc[0]
    assert fit["m2_k"] == pytest.approx(-0.5, abs=1e-6)
    assert (fit["m2_w_good"], fit["m2_w_bad"]) == pytest.approx((0.6, 0.4), abs=1e-6)
    assert fit["best_model"] == "M2"


def test_rates_above_one_do_not_make_m2_win() -> None:
    # Version 1's M2 won 15 of 16 such sessions by overshooting past the base rate.
    rng = np.random.default_rng(11)
    n = 200
    trials = simulate_sessions(
        n, lr_good=rng.uniform(1.05, 1.3, n), lr_bad=rng.uniform(1.05, 1.3, n), rng=rng
    )
    fit = fit_sessions(trials)
    rates = m2_rates(trials, fit)
    assert rates.min() >= -1e-12 and rates.max() <= 1 + 1e-12
    assert (fit["best_model"] == "M2").sum() == 0


def test_information_criteria_count_sigma() -> None:
    trials = simulate_sessions(5, lr_good=0.6, lr_bad=0.4, rng=1)
    fit = fit_sessions(trials)
    n = (~derive_trials(trials)["excluded"]).groupby(trials["session"]).sum()
    for model in MODELS:
        p = model.lower()
        k = N_PARAMETERS[model]
        assert np.allclose(fit[f"{p}_aic"], 2 * k - 2 * fit[f"{p}_loglik"], rtol=0, atol=1e-9)
        assert np.allclose(
            fit[f"{p}_bic"], k * np.log(n.to_numpy()) - 2 * fit[f"{p}_loglik"], rtol=0, atol=1e-9
        )
    bics = fit[["m0_bic", "m1_bic", "m2_bic"]].to_numpy()
    assert list(fit["best_model"]) == [MODELS[i] for i in bics.argmin(axis=1)]
    assert list(fit.columns) == list(FIT_COLUMNS)


def test_parameter_recovery(capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(20220401)
    truth_good = rng.uniform(0.1, 0.9, N_RECOVERY)
    truth_bad = rng.uniform(0.1, 0.9, N_RECOVERY)
    trials = simulate_sessions(N_RECOVERY, 40, lr_good=truth_good, lr_bad=truth_bad, rng=rng)
    fit = fit_sessions(trials)
    figures = {}
    for valence, truth in (("good", truth_good), ("bad", truth_bad)):
        estimate = fit[f"m1_lr_{valence}"].to_numpy()
        figures[valence] = (
            float(np.corrcoef(estimate, truth)[0, 1]),
            float(np.mean(estimate - truth)),
        )
    with capsys.disabled():
        for valence, (r, bias) in figures.items():
            print(f"\nM1 recovery, LR_{valence}: r = {r:.4f}, mean error = {bias:+.4f}")
    for r, bias in figures.values():
        assert r >= 0.9
        assert abs(bias) <= 0.02


def test_model_recovery_confusion_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(17)
    n = N_RECOVERY
    generated = {
        "M0": simulate_sessions_m0(n, lr=rng.uniform(0.1, 0.9, n), rng=rng),
        "M1": simulate_sessions(
            n, lr_good=rng.uniform(0.1, 0.9, n), lr_bad=rng.uniform(0.1, 0.9, n), rng=rng
        ),
        "M2": simulate_sessions(
            n,
            lr_good=rng.uniform(0.1, 0.5, n),
            lr_bad=rng.uniform(0.1, 0.5, n),
            k=rng.uniform(1.0, 4.0, n),
            rng=rng,
        ),
    }
    confusion = pd.DataFrame(
        {
            truth: fit_sessions(trials)["best_model"].value_counts().reindex(MODELS, fill_value=0)
            for truth, trials in generated.items()
        }
    ).T
    confusion.index.name = "generated"
    confusion.columns.name = "chosen by BIC"
    with capsys.disabled():
        print(f"\n{confusion.to_string()}")
    assert (np.diag(confusion.to_numpy()) > n / 2).all()


def test_vectorised_fit_is_never_worse_than_the_naive_one() -> None:
    rng = np.random.default_rng(5)
    n = 30
    trials = simulate_sessions(
        n,
        lr_good=rng.uniform(0, 1, n),
        lr_bad=rng.uniform(0, 1, n),
        k=np.where(np.arange(n) % 3 == 0, rng.uniform(0, 5, n), 0.0),
        sigma=6.0,
        rng=rng,
    )
    # A session with one valence only, and one with three trials.
    only_good = trials["session"].eq(0) & (trials["br"] > trials["e1"])
    trials = trials.loc[~only_good & ~(trials["session"].eq(1) & trials["event"].gt(3))]
    fast = fit_sessions(trials)
    naive = fit_sessions_naive(trials)
    assert list(naive.index) == list(fast.index)
    assert pd.isna(fast["m1_lr_bad"][0]) and pd.isna(naive["m1_lr_bad"][0])
    for model in MODELS:
        column = f"{model.lower()}_loglik"
        gap = (naive[column] - fast[column]).max()
        assert gap <= 1e-6, (model, gap)
    # Where the naive optimiser reaches the optimum, it finds the same rates.
    assert np.allclose(naive["m1_lr_good"], fast["m1_lr_good"], atol=1e-3, equal_nan=True)
    assert list(naive["best_model"]) == list(fast["best_model"])
    assert fast["best_model"][1] is None  # three trials
    rates = m2_rates(trials, fast)
    assert rates.min() >= -1e-12 and rates.max() <= 1 + 1e-12


def test_naive_fit_agrees_on_bounded_m2_data() -> None:
    # Sessions where the bound binds (rates above 1) or k is negative.
    rng = np.random.default_rng(8)
    n = 12
    trials = simulate_sessions(
        n,
        lr_good=np.where(np.arange(n) < 6, 1.2, 0.35),
        lr_bad=np.where(np.arange(n) < 6, 1.1, 0.3),
        k=np.where(np.arange(n) < 6, 0.5, -0.7),
        rng=rng,
    )
    fast = fit_sessions(trials)
    naive = fit_sessions_naive(trials)
    gap = (naive["m2_loglik"] - fast["m2_loglik"]).max()
    assert gap <= 1e-6, gap
    assert (fast["m2_k"][6:] < 0).all()


def test_simulated_trials_follow_the_design() -> None:
    trials = simulate_sessions(4, 10, lr_good=[0.2, 0.4, 0.6, 0.8], lr_bad=0.5, rng=3)
    assert list(trials.columns) == ["session", "event", "e1", "br", "e2"]
    assert len(trials) == 40
    assert trials["e1"].between(3, 77).all() and trials["e2"].between(3, 77).all()
    assert trials["br"].between(10, 70).all()
    by_event = trials.groupby("event")["br"].nunique()
    assert (by_event == 1).all()  # one base rate per event, shared by sessions
    assert (trials["e2"] == trials["e2"].round()).all()
