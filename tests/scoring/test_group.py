"""Group level: summaries per arm x timepoint and the linear mixed model."""

import math

import numpy as np
import pandas as pd
import pytest

from scoring.group import (
    COEFFICIENT_COLUMNS,
    SUMMARY_COLUMNS,
    attach_session_attributes,
    group_summary,
    mixed_model,
)

NAN = math.nan
VALENCE_TERM = "C(valence, Treatment('bad'))[T.good]"


def tiny_scores() -> pd.DataFrame:
    rows = [
        # session, arm, timepoint, update_good, update_bad, update_bias, alpha_good
        ("s1", "ctl", "base", 10.0, 4.0, 6.0, 0.5),
        ("s4", "ctl", "4h", 12.0, 2.0, 10.0, 0.6),
        ("s2", "ctl", "base", 20.0, 6.0, 14.0, 0.7),
        ("s5", "trd", "base", 5.0, NAN, NAN, 0.1),
        ("s3", "ctl", "base", 30.0, 8.0, 22.0, 0.9),
        ("s6", "trd", "base", 7.0, 9.0, -2.0, 0.3),
    ]
    columns = ["session", "arm", "timepoint", "update_good", "update_bad", "update_bias"]
    frame = pd.DataFrame(rows, columns=[*columns, "alpha_good"]).set_index("session")
    frame["alpha_bad"] = 0.25
    frame["m1_lr_good"] = frame["alpha_good"]
    return frame  # no m1_lr_bad column: it reads as NaN


def test_group_summary_exact_means_and_sems() -> None:
    summary = group_summary(tiny_scores())
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert list(zip(summary["arm"], summary["timepoint"], strict=True)) == [
        ("ctl", "base"),
        ("ctl", "4h"),
        ("trd", "base"),
    ]
    assert list(summary["n_sessions"]) == [3, 1, 2]
    ctl, single, trd = (summary.iloc[i] for i in range(3))

    root3 = math.sqrt(3)
    assert ctl["update_good_mean"] == pytest.approx(20.0, rel=1e-12)
    assert ctl["update_good_sem"] == pytest.approx(10 / root3, rel=1e-12)  # sd 10
    assert ctl["update_bad_mean"] == pytest.approx(6.0, rel=1e-12)
    assert ctl["update_bad_sem"] == pytest.approx(2 / root3, rel=1e-12)
    assert ctl["update_bias_mean"] == pytest.approx(14.0, rel=1e-12)
    assert ctl["update_bias_sem"] == pytest.approx(8 / root3, rel=1e-12)
    assert ctl["alpha_good_mean"] == pytest.approx(0.7, rel=1e-12)
    assert ctl["alpha_good_sem"] == pytest.approx(0.2 / root3, rel=1e-12)
    assert ctl["alpha_bad_mean"] == 0.25
    assert ctl["alpha_bad_sem"] == 0.0

    assert single["update_good_mean"] == 12.0
    assert math.isnan(single["update_good_sem"])  # one session

    assert trd["update_good_mean"] == pytest.approx(6.0, rel=1e-12)
    assert trd["update_good_sem"] == pytest.approx(1.0, rel=1e-12)  # sd sqrt(2) / sqrt(2)
    assert trd["update_bad_mean"] == 9.0  # the undefined figure is left out
    assert math.isnan(trd["update_bad_sem"])
    assert summary["m1_lr_bad_mean"].isna().all()


def test_group_summary_of_nothing() -> None:
    empty = group_summary(pd.DataFrame(columns=["arm", "timepoint", "update_good"]))
    assert empty.empty
    assert list(empty.columns) == list(SUMMARY_COLUMNS)


def test_group_summary_needs_arm_and_timepoint() -> None:
    with pytest.raises(ValueError, match="timepoint"):
        group_summary(tiny_scores().drop(columns="timepoint"))


def test_attach_session_attributes() -> None:
    scores = pd.DataFrame({"update_good": [1.0, 2.0]}, index=pd.Index(["b", "a"], name="session"))
    trials = pd.DataFrame(
        {"session": ["a", "a", "b"], "arm": [None, "ctl", "trd"], "participant": ["p", "p", "q"]}
    )
    out = attach_session_attributes(scores, trials)
    assert list(out["arm"]) == ["trd", "ctl"]
    assert list(out["participant"]) == ["q", "p"]
    assert out["timepoint"].isna().all()


def simulated_study(
    *,
    valence_effect: float = 3.0,
    participants: int = 24,
    participant_sd: float = 2.0,
    seed: int = 11,
) -> pd.DataFrame:
    """Trials with update = 2 + u_p + effect * good + 0.4 EE + noise (sd 3)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(participants):
        arm = "ctl" if p % 2 == 0 else "trd"
        offset = rng.normal(0, participant_sd)
        for timepoint in ("base", "4h"):
            for event in range(20):
                good = event % 2 == 0
                ee = float(rng.integers(5, 31))
                update = 2 + offset + valence_effect * good + 0.4 * ee + rng.normal(0, 3)
                e1 = 40.0
                br = e1 - ee if good else e1 + ee
                e2 = e1 - update if good else e1 + update
                rows.append((f"p{p}", arm, timepoint, f"p{p}-{timepoint}", event, e1, br, e2))
    columns = ["participant", "arm", "timepoint", "session", "event", "e1", "br", "e2"]
    return pd.DataFrame(rows, columns=columns)


def coefficient(result_table: pd.DataFrame, term: str) -> pd.Series:
    row = result_table.set_index("term").loc[term]
    assert isinstance(row, pd.Series)
    return row


def test_mixed_model_recovers_the_valence_effect() -> None:
    trials = simulated_study()
    # An excluded trial (no E2) must not enter the model.
    trials.loc[0, "e2"] = NAN
    result = mixed_model(trials, timepoint_order=["base", "4h"])
    assert result.reason == ""
    assert result.converged
    assert (result.n_obs, result.n_groups) == (24 * 2 * 20 - 1, 24)
    assert result.reference_levels == {"valence": "bad", "arm": "ctl", "timepoint": "base"}
    assert result.formula == (
        "update ~ C(valence, Treatment('bad')) * C(arm, Treatment('ctl')) "
        "* C(timepoint, Treatment('base')) + ee + (1 | participant)"
    )
    assert list(result.coefficients.columns) == list(COEFFICIENT_COLUMNS)
    assert len(result.coefficients) == 9  # intercept, 7 factor terms, ee

    valence = coefficient(result.coefficients, VALENCE_TERM)
    assert valence["estimate"] > 0
    assert valence["ci_low"] <= 3.0 <= valence["ci_high"]
    assert valence["p_value"] < 0.001
    ee = coefficient(result.coefficients, "ee")
    assert ee["ci_low"] <= 0.4 <= ee["ci_high"]
    assert result.group_variance > 0
    assert result.to_dict()["n_groups"] == 24


def test_mixed_model_sign_follows_a_negative_effect() -> None:
    result = mixed_model(simulated_study(valence_effect=-2.0, seed=3))
    valence = coefficient(result.coefficients, VALENCE_TERM)
    assert valence["estimate"] < 0
    assert valence["ci_low"] <= -2.0 <= valence["ci_high"]


def test_mixed_model_drops_a_single_level_factor() -> None:
    trials = simulated_study()
    trials = trials.loc[trials["timepoint"] == "base"]
    result = mixed_model(trials, arm_order=["trd", "ctl"])
    assert result.reason == ""
    assert "timepoint dropped: a single level" in result.formula
    assert "timepoint" not in result.reference_levels
    assert result.reference_levels["arm"] == "trd"
    assert "C(arm, Treatment('trd'))[T.ctl]" in set(result.coefficients["term"])


def assert_not_fitted(trials: pd.DataFrame, reason: str) -> None:
    result = mixed_model(trials)
    assert reason in result.reason
    assert not result.converged
    assert result.coefficients.empty
    assert list(result.coefficients.columns) == list(COEFFICIENT_COLUMNS)


def test_mixed_model_degenerate_inputs_give_a_reason() -> None:
    trials = simulated_study()
    assert_not_fitted(trials.loc[trials["participant"] == "p0"], "need 2")
    assert_not_fitted(trials.iloc[:0], "need 2")
    assert_not_fitted(trials.drop(columns="participant"), "no participant column")
    assert_not_fitted(trials.loc[trials["br"] < trials["e1"]], "one valence")
    # Each arm seen at one timepoint only: arm and timepoint are confounded.
    confounded = trials.loc[
        ((trials["arm"] == "ctl") & (trials["timepoint"] == "base"))
        | ((trials["arm"] == "trd") & (trials["timepoint"] == "4h"))
    ]
    assert_not_fitted(confounded, "singular design")
    with_unknown_level = mixed_model(trials, timepoint_order=["base", "7d"])
    assert with_unknown_level.reason == (
        "timepoint level(s) '4h' are not in the timepoint order ['base', '7d']"
    )
    assert with_unknown_level.coefficients.empty


def test_mixed_model_reports_a_boundary_fit_as_not_converged() -> None:
    # No participant effect at all: the variance estimate sits on its bound
    # (lme4's "boundary (singular) fit"); the result says so instead of raising.
    result = mixed_model(simulated_study(participant_sd=0.0, participants=6, seed=1))
    assert result.reason == ""
    assert not result.converged
    assert result.singular
    assert result.group_variance < 1e-12
    assert "boundary (singular) fit: a random-effect variance is estimated at 0" in result.warnings
    assert len(result.coefficients) == 9
