"""Trial derivation and per-session scores, on sessions worked out by hand."""

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from scoring.fitting import K_BOUNDS
from scoring.metrics import (
    DERIVED_COLUMNS,
    METRIC_COLUMNS,
    SCORE_COLUMNS,
    SCORE_VERSION,
    V2_METRIC_COLUMNS,
    SessionScores,
    derive_trials,
    score_sessions,
    scores_for_export,
    update_bias_ee_naive,
)
from scoring.pipeline import score_all

MakeSession = Callable[..., pd.DataFrame]
NAN = math.nan


def close(expected: float) -> object:
    """Equality up to float rounding: the figures are exact fractions."""
    return pytest.approx(expected, rel=1e-12, abs=1e-12)


def loglik(rss: float, n: int) -> float:
    """Gaussian log-likelihood at the MLE sigma^2 = RSS / n."""
    return -n / 2 * (math.log(2 * math.pi * rss / n) + 1)


def test_score_columns_follow_the_export_contract() -> None:
    assert SCORE_VERSION == 2
    assert list(SCORE_COLUMNS[:32]) == [
        "n_good",
        "n_bad",
        "n_excluded",
        "update_good",
        "update_bad",
        "update_bias",
        "ee_good",
        "ee_bad",
        "mean_e1",
        "alpha_good",
        "alpha_bad",
        "norm_update_good",
        "norm_update_bad",
        "learn_r_good",
        "learn_r_bad",
        "memory_error",
        "rt_e1_mean_ms",
        "rt_e2_mean_ms",
        "ebr_update_bias",
        "m0_lr",
        "m0_bic",
        "m1_lr_good",
        "m1_lr_bad",
        "m1_scaling",
        "m1_asymmetry",
        "m1_bic",
        "m2_w_good",
        "m2_w_bad",
        "m2_k",
        "m2_bic",
        "best_model",
        "flags",
    ]
    # Version 2's columns (DESIGN.md) close the list.
    assert list(SCORE_COLUMNS[-7:]) == [
        "update_bias_ee",
        "ebr_n_good",
        "ebr_n_bad",
        "ebr_update_good",
        "ebr_update_bad",
        "self_update_good_by_ebr",
        "self_update_bad_by_ebr",
    ]
    assert tuple(SessionScores.__dataclass_fields__) == SCORE_COLUMNS


def test_derive_trials_by_hand(hand_trials: pd.DataFrame) -> None:
    derived = derive_trials(hand_trials).set_index("event")
    assert list(derived["valence"]) == [
        "good",  # b1
        "good",  # practice: BR 20 < E1 40
        "good",
        "bad",
        "good",
        "bad",  # b2
        "neutral",
        "bad",
        "good",
        "bad",
    ]
    assert list(derived["exclusion_reason"]) == [
        "",
        "practice",
        "",
        "",
        "",
        "",
        "neutral",
        "missing_e2",
        "",
        "",
    ]
    assert list(derived["excluded"]) == [r != "" for r in derived["exclusion_reason"]]
    assert list(derived.loc[["e1", "e2", "e3", "e4", "e6", "e7"], "ee"]) == [
        20,
        20,
        10,
        0,
        30,
        5,
    ]
    assert list(derived.loc[["e1", "e2", "e3", "e6"], "signed_error"]) == [20, -20, 10, 30]
    # Good news: E1 - E2; bad news: E2 - E1; a move away keeps its minus sign.
    assert list(derived.loc[["e1", "e2", "e3", "e6", "e7"], "update"]) == [10, 10, -2, 24, 4]
    assert pd.isna(derived["update"]["e4"])  # neutral
    assert pd.isna(derived["update"]["e5"])  # no E2
    assert list(derived.loc[["p1", "e1", "e2", "e3", "e5", "e6", "e7"], "ebr_valence"]) == [
        "good",
        "good",
        "bad",
        "neutral",
        "bad",
        "good",
        "good",
    ]
    assert derived.loc["e4", "ebr_valence"] == ""  # no eBR1
    assert list(derived.loc[["p1", "e1", "e2", "e5", "e6"], "ebr_update"]) == [30, 6, 6, 8, 10]
    assert pd.isna(derived["ebr_update"]["e7"])  # no eBR2
    assert "valence" not in hand_trials.columns  # a copy, the input is untouched


def test_exclusion_reason_takes_the_first_that_applies(make_session: MakeSession) -> None:
    trials = make_session(
        [(NAN, 30, NAN), (NAN, NAN, NAN), (40, NAN, NAN), (40, 30, NAN), (40, 40, 40)],
        practice=[True, False, False, False, False],
    )
    assert list(derive_trials(trials)["exclusion_reason"]) == [
        "practice",
        "missing_e1",
        "missing_br",
        "missing_e2",
        "neutral",
    ]


def test_score_all_by_hand(hand_trials: pd.DataFrame) -> None:
    scores = score_all(hand_trials)
    assert list(scores.columns) == list(SCORE_COLUMNS)
    assert list(scores.index) == ["B", "A"]
    assert scores.index.name == "session"
    a = scores.loc["A"]

    # Valid trials: good (EE, update) = (20, 10), (10, -2), (30, 24);
    # bad (20, 10), (5, 4). Excluded: the practice, the neutral, the missing E2.
    assert (a["n_good"], a["n_bad"], a["n_excluded"]) == (3, 2, 3)
    assert a["update_good"] == close(32 / 3)
    assert a["update_bad"] == close(7.0)
    assert a["update_bias"] == close(32 / 3 - 7)
    assert a["ee_good"] == close(20.0)
    assert a["ee_bad"] == close(12.5)
    # Every non-practice E1: 50 + 20 + 60 + 25 + 30 + 70 + 10.
    assert a["mean_e1"] == close(265 / 7)
    assert a["alpha_good"] == close((200 - 20 + 720) / (400 + 100 + 900))
    assert a["alpha_bad"] == close((200 + 20) / (400 + 25))
    assert a["norm_update_good"] == close((0.5 - 0.2 + 0.8) / 3)
    assert a["norm_update_bad"] == close((0.5 + 0.8) / 2)
    # r: centred EE (0, -10, 10), sxy = 260, sxx = 200, syy = 680 - 3 (32/3)^2.
    assert a["learn_r_good"] == close(260 / math.sqrt(200 * 1016 / 3))
    assert pd.isna(a["learn_r_bad"])  # two trials only
    # |recall - BR| over non-practice trials with a recall: 0, 5, 5, 0, 0, 10.
    assert a["memory_error"] == close(20 / 6)
    assert a["rt_e1_mean_ms"] == close(12000 / 7)
    assert a["rt_e2_mean_ms"] == close(1000.0)
    # eBR split: good updates 6 and 10, bad 6 and 8 (the practice's 30 left out).
    assert a["ebr_update_bias"] == close(8 - 7)

    # Models on x = BR - E1, y = E2 - E1.
    rss0 = 796 - 1120**2 / 1825
    ll0 = loglik(rss0, 5)
    assert a["m0_lr"] == close(1120 / 1825)
    assert a["m0_sigma"] == close(math.sqrt(rss0 / 5))
    assert a["m0_loglik"] == close(ll0)
    assert a["m0_aic"] == close(4 - 2 * ll0)
    assert a["m0_bic"] == close(2 * math.log(5) - 2 * ll0)

    rss1 = (680 - 900**2 / 1400) + (116 - 220**2 / 425)
    ll1 = loglik(rss1, 5)
    assert a["m1_lr_good"] == close(900 / 1400)
    assert a["m1_lr_bad"] == close(220 / 425)
    assert a["m1_scaling"] == close((900 / 1400 + 220 / 425) / 2)
    assert a["m1_asymmetry"] == close(900 / 1400 - 220 / 425)
    assert a["m1_sigma"] == close(math.sqrt(rss1 / 5))
    assert a["m1_loglik"] == close(ll1)
    assert a["m1_aic"] == close(6 - 2 * ll1)
    assert a["m1_bic"] == close(3 * math.log(5) - 2 * ll1)

    # M2: the larger errors carry the larger updates, so the fit takes k to its
    # bound 10; there z = x (1 + 10 |x| / 100): good z = -60, -20, -120 and bad
    # z = 60, 7.5, each w the slope of y on z. The effective rates stay under 1
    # (good 0.187 * (1 + 10 * 0.3) = 0.748 at most), so version 2's bound is not
    # what stops k.
    rss2 = (680 - 3440**2 / 18400) + (116 - 630**2 / 3656.25)
    ll2 = loglik(rss2, 5)
    assert a["m2_k"] == K_BOUNDS[1] == 10
    assert a["m2_w_good"] == close(3440 / 18400)
    assert a["m2_w_bad"] == close(630 / 3656.25)
    assert a["m2_sigma"] == close(math.sqrt(rss2 / 5))
    assert a["m2_loglik"] == close(ll2)
    assert a["m2_aic"] == close(8 - 2 * ll2)
    assert a["m2_bic"] == close(4 * math.log(5) - 2 * ll2)
    # BIC 31.54 < M0 32.80 < M1 34.17, but five valid trials are too few to
    # compare models (version 2).
    assert a["best_model"] is None
    assert a["flags"] == ("too_few_bad", "too_few_for_models", "too_few_good")

    # update ~ 1 + good + EE: the pooled within-valence slope of update on EE
    # is (260 + 45) / (200 + 112.5) (good: centred EE 0, -10, 10 against
    # updates 10, -2, 24; bad: 7.5, -7.5 against 10, 4), and the coefficient
    # of good news is the raw bias minus that slope times the EE gap 20 - 12.5.
    assert a["update_bias_ee"] == close(32 / 3 - 7 - 305 / 312.5 * 7.5)
    # eBR trials: e1 good (eBR update 6), e6 good (10), e2 bad (6), e5 bad (8,
    # no E2 needed); the practice, the neutral e3, e4 (no eBR1), e7 (no eBR2)
    # are out.
    assert (a["ebr_n_good"], a["ebr_n_bad"]) == (2, 2)
    assert (a["ebr_update_good"], a["ebr_update_bad"]) == (8, 7)
    # Self updates of those trials: e1 10, e6 24; e2 10 (e5 has no E2).
    assert (a["self_update_good_by_ebr"], a["self_update_bad_by_ebr"]) == (17, 10)

    b = scores.loc["B"]
    assert (b["n_good"], b["n_bad"], b["n_excluded"]) == (1, 1, 0)
    assert (b["update_good"], b["update_bad"], b["update_bias"]) == (5, 10, -5)
    assert (b["alpha_good"], b["alpha_bad"], b["mean_e1"]) == (0.5, 0.5, 40)
    for column in ("memory_error", "rt_e1_mean_ms", "rt_e2_mean_ms", "ebr_update_bias"):
        assert pd.isna(b[column])
    # One trial per valence: update_bias_ee is not defined; no eBR collected.
    assert pd.isna(b["update_bias_ee"])
    assert (b["ebr_n_good"], b["ebr_n_bad"]) == (0, 0)
    assert_undefined(b, ["ebr_update_good", "ebr_update_bad", "self_update_good_by_ebr"])
    assert pd.isna(b["self_update_bad_by_ebr"])
    assert (b["m1_lr_good"], b["m1_lr_bad"]) == (0.5, 0.5)
    assert b["m1_sigma"] == 0.5  # a perfect fit sits on the sigma floor
    assert b["m0_bic"] < b["m1_bic"]  # M1 fits no better with one more parameter
    assert b["best_model"] is None  # two trials


def test_session_scores_dataclass_and_export(hand_trials: pd.DataFrame) -> None:
    scores = score_all(hand_trials)
    one = SessionScores.from_row(scores.iloc[1])  # session A
    assert one.n_good == 3
    assert one.flags == ("too_few_bad", "too_few_for_models", "too_few_good")
    assert one.best_model is None
    assert (one.ebr_n_good, one.ebr_n_bad) == (2, 2)
    assert isinstance(one.ebr_n_good, int)
    export = scores_for_export(scores)
    assert list(export.columns) == ["session", *SCORE_COLUMNS]
    assert list(export["flags"]) == ["too_few_bad;too_few_for_models;too_few_good"] * 2
    assert list(export["best_model"]) == ["", ""]


def test_score_sessions_keeps_integer_session_ids(make_session: MakeSession) -> None:
    trials = pd.concat(
        [make_session([(50, 30, 40)], session="x"), make_session([(20, 40, 30)], session="y")]
    )
    trials["session"] = [7, 3]
    scores = score_sessions(trials)
    assert list(scores.index) == [7, 3]
    assert list(scores.columns) == [*METRIC_COLUMNS, *V2_METRIC_COLUMNS, "flags"]


def assert_undefined(row: pd.Series, columns: list[str]) -> None:
    for column in columns:
        assert pd.isna(row[column]), column


GOOD_FIELDS = ["update_good", "ee_good", "alpha_good", "norm_update_good", "learn_r_good"]
BAD_FIELDS = ["update_bad", "ee_bad", "alpha_bad", "norm_update_bad", "learn_r_bad"]


def test_no_bad_news_trial(make_session: MakeSession) -> None:
    trials = make_session([(50, 30, 40), (60, 20, 45), (40, 10, 30), (70, 40, 50)])
    row = score_all(trials).iloc[0]
    assert (row["n_good"], row["n_bad"]) == (4, 0)
    assert_undefined(row, [*BAD_FIELDS, "update_bias", "m1_lr_bad", "m1_scaling"])
    assert_undefined(row, ["m1_asymmetry", "m2_w_bad"])
    assert row["m1_lr_good"] == close(row["m0_lr"])
    assert row["m1_loglik"] == close(row["m0_loglik"])
    assert row["m0_bic"] < row["m1_bic"]
    assert row["best_model"] is None
    assert row["flags"] == ("too_few_bad", "too_few_for_models", "too_few_good")


def test_all_neutral_session(make_session: MakeSession) -> None:
    trials = make_session([(30, 30, 35), (40, 40, 40), (50, 50, 45)])
    row = score_all(trials).iloc[0]
    assert (row["n_good"], row["n_bad"], row["n_excluded"]) == (0, 0, 3)
    assert row["mean_e1"] == 40
    assert_undefined(row, [*GOOD_FIELDS, *BAD_FIELDS, "update_bias"])
    assert_undefined(row, ["m0_lr", "m0_bic", "m1_lr_good", "m2_k", "m2_loglik"])
    assert row["best_model"] is None
    assert row["flags"] == ("no_valid_trials", "too_few_bad", "too_few_for_models", "too_few_good")


def test_missing_second_estimates(make_session: MakeSession) -> None:
    trials = make_session([(50, 30, NAN), (20, 40, NAN)])
    scores = score_all(trials)
    row = scores.iloc[0]
    assert (row["n_good"], row["n_bad"], row["n_excluded"]) == (0, 0, 2)
    assert row["mean_e1"] == 35
    assert "no_valid_trials" in row["flags"]
    assert list(derive_trials(trials)["exclusion_reason"]) == ["missing_e2"] * 2


def test_constant_answers(make_session: MakeSession) -> None:
    trials = make_session([(50, br, 50) for br in (20, 30, 40, 60, 70, 80)])
    row = score_all(trials).iloc[0]
    assert (row["n_good"], row["n_bad"]) == (3, 3)
    assert (row["update_good"], row["update_bad"], row["alpha_good"]) == (0, 0, 0)
    assert_undefined(row, ["learn_r_good", "learn_r_bad"])  # no variance in update
    assert (row["m0_lr"], row["m1_lr_good"], row["m1_lr_bad"]) == (0, 0, 0)
    assert (row["m2_w_good"], row["m2_w_bad"], row["m2_k"]) == (0, 0, 0)
    assert row["flags"] == (
        "constant_e1",
        "constant_e2",
        "too_few_bad",
        "too_few_for_models",
        "too_few_good",
    )


def test_constant_needs_five_answers(make_session: MakeSession) -> None:
    trials = make_session([(50, br, 50) for br in (20, 30, 40, 60)])
    assert "constant_e1" not in score_all(trials).iloc[0]["flags"]


def test_values_at_the_scale_ends(make_session: MakeSession) -> None:
    # Full moves (update = EE) and overshoots clipped at 3 and 77.
    trials = make_session([(3, 70, 77), (77, 10, 3), (3, 77, 77), (77, 3, 3), (10, 3, 3)])
    row = score_all(trials).iloc[0]
    assert (row["n_good"], row["n_bad"]) == (3, 2)
    assert row["update_good"] == close((74 + 74 + 7) / 3)
    assert row["update_bad"] == close(74)
    # Good-news slope (74*67 + 74*74 + 7*7) / (67^2 + 74^2 + 7^2) > 1: clipped.
    assert row["alpha_good"] > 1
    assert row["m1_lr_good"] == 1.0
    assert row["m1_lr_bad"] == 1.0
    assert 0 <= row["m2_w_good"] <= 1
    assert all(math.isfinite(row[c]) for c in ("m0_bic", "m1_bic", "m2_bic"))


def test_single_trial(make_session: MakeSession) -> None:
    row = score_all(make_session([(50, 30, 41)])).iloc[0]
    assert (row["n_good"], row["n_bad"]) == (1, 0)
    assert row["update_good"] == 9
    assert row["alpha_good"] == close(9 / 20)
    assert row["norm_update_good"] == close(9 / 20)
    assert pd.isna(row["learn_r_good"])
    assert row["m0_lr"] == close(9 / 20)
    assert row["m0_sigma"] == 0.5
    assert row["m0_loglik"] == close(-0.5 * math.log(2 * math.pi * 0.25))
    assert row["best_model"] is None  # BIC ties at n = 1: no model comparison


def test_session_of_practice_only_and_of_missing_values(make_session: MakeSession) -> None:
    practice = make_session([(50, 30, 40)], session="P", practice=[True])
    blank = make_session([(NAN, NAN, NAN)] * 2, session="Q")
    scores = score_all(pd.concat([practice, blank], ignore_index=True))
    assert list(scores.index) == ["P", "Q"]
    for _, row in scores.iterrows():
        assert row["n_good"] + row["n_bad"] == 0
        assert_undefined(row, ["mean_e1", "update_bias", "m0_lr", "m2_bic"])
        assert row["best_model"] is None
        assert "no_valid_trials" in row["flags"]


def test_no_rows_at_all(make_session: MakeSession) -> None:
    empty = make_session([]).astype({"e1": float, "br": float, "e2": float})
    scores = score_all(empty)
    assert scores.empty
    assert list(scores.columns) == list(SCORE_COLUMNS)


def test_text_in_a_numeric_column_is_missing(make_session: MakeSession) -> None:
    trials = make_session([(50, 30, 40), (20, 40, 30)])
    trials["e2"] = pd.Series(["40", "n/a"], dtype=object)
    row = score_all(trials).iloc[0]
    assert (row["n_good"], row["n_bad"], row["n_excluded"]) == (1, 0, 1)


def test_many_away_and_fast_rt(make_session: MakeSession) -> None:
    # Two of four valid trials move away from the base rate (50 % > 25 %).
    trials = make_session(
        [(50, 30, 55), (50, 70, 45), (50, 30, 40), (50, 70, 60)],
        rt_e1_ms=[400, 450, 600, 300],
        rt_e2_ms=[900, 900, 900, 900],
    )
    row = score_all(trials).iloc[0]
    assert row["rt_e1_mean_ms"] == close(437.5)
    assert "many_away" in row["flags"]
    assert "fast_rt" in row["flags"]  # median E1 RT 425 ms


def test_one_move_away_in_four_is_not_many(make_session: MakeSession) -> None:
    trials = make_session(
        [(50, 30, 55), (50, 70, 55), (50, 30, 40), (50, 70, 60)],
        rt_e1_ms=[400, 450, 600, 700],
    )
    flags = score_all(trials).iloc[0]["flags"]
    assert "many_away" not in flags
    assert "fast_rt" not in flags  # median 525 ms


def test_min_valid_per_valence_is_a_setting(hand_trials: pd.DataFrame) -> None:
    scores = score_all(hand_trials, min_valid_per_valence=2)
    assert scores.loc["A", "flags"] == ("too_few_for_models",)
    assert scores.loc["B", "flags"] == ("too_few_bad", "too_few_for_models", "too_few_good")


def test_missing_required_column_is_an_error(make_session: MakeSession) -> None:
    with pytest.raises(ValueError, match="br"):
        score_all(make_session([(50, 30, 40)]).drop(columns="br"))


def test_derived_columns_are_all_added(hand_trials: pd.DataFrame) -> None:
    derived = derive_trials(hand_trials)
    assert set(DERIVED_COLUMNS) <= set(derived.columns)
    assert len(derived) == len(hand_trials)


# Property tests. Estimates sit in 30..50 and base rates / second estimates
# within 27 points of them, so mirrored and shifted sessions stay inside 3..77.

trial = st.tuples(
    st.integers(30, 50),
    st.integers(-27, 27),
    st.integers(-27, 27),
)
sessions = st.lists(trial, min_size=1, max_size=14)
PROPERTY_SETTINGS = settings(max_examples=40, deadline=None)

MIRRORED = [
    ("n_good", "n_bad"),
    ("update_good", "update_bad"),
    ("ee_good", "ee_bad"),
    ("alpha_good", "alpha_bad"),
    ("norm_update_good", "norm_update_bad"),
    ("learn_r_good", "learn_r_bad"),
    ("m1_lr_good", "m1_lr_bad"),
]


def frame_of(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "session": ["S"] * len(rows),
            "event": list(range(len(rows))),
            "e1": [r[0] for r in rows],
            "br": [r[1] for r in rows],
            "e2": [r[2] for r in rows],
        }
    )


def same(a: object, b: object) -> bool:
    x, y = float(a), float(b)  # type: ignore[arg-type]
    return (pd.isna(x) and pd.isna(y)) or x == pytest.approx(y, rel=1e-9, abs=1e-9)


@PROPERTY_SETTINGS
@given(sessions)
def test_mirroring_swaps_good_and_bad_news(rows: list[tuple[int, int, int]]) -> None:
    # BR' = 2 E1 - BR and E2' = 2 E1 - E2 turn good news into bad news with the
    # same error and the same move toward the base rate.
    original = [(e1, e1 + d, e1 + u) for e1, d, u in rows]
    mirrored = [(e1, e1 - d, e1 - u) for e1, d, u in rows]
    a = score_all(frame_of(original)).iloc[0]
    b = score_all(frame_of(mirrored)).iloc[0]
    for good, bad in MIRRORED:
        assert same(a[good], b[bad]), good
        assert same(a[bad], b[good]), bad
    assert same(a["update_bias"], -b["update_bias"])
    assert same(a["m1_asymmetry"], -b["m1_asymmetry"])
    for column in ("m0_lr", "m0_loglik", "m1_loglik", "m2_loglik", "n_excluded"):
        assert same(a[column], b[column]), column


SHIFT_INVARIANT = [
    c
    for c in SCORE_COLUMNS
    if c not in ("mean_e1", "flags", "best_model", "memory_error", "rt_e1_mean_ms")
    and c not in ("rt_e2_mean_ms", "ebr_update_bias")
]


@PROPERTY_SETTINGS
@given(sessions, st.data())
def test_shifting_every_answer_changes_no_update_or_model_figure(
    rows: list[tuple[int, int, int]], data: st.DataObject
) -> None:
    values = [(e1, e1 + d, e1 + u) for e1, d, u in rows]
    lowest = min(min(v) for v in values)
    highest = max(max(v) for v in values)
    shift = data.draw(st.integers(3 - lowest, 77 - highest))
    a = score_all(frame_of(values)).iloc[0]
    b = score_all(frame_of([(x + shift, y + shift, z + shift) for x, y, z in values])).iloc[0]
    for column in SHIFT_INVARIANT:
        assert same(a[column], b[column]), column
    assert a["best_model"] == b["best_model"]
    assert a["flags"] == b["flags"]
    assert same(a["mean_e1"] + shift, b["mean_e1"])


@PROPERTY_SETTINGS
@given(
    st.lists(st.tuples(st.integers(3, 77), st.integers(10, 70), st.integers(3, 77)), max_size=20)
)
def test_fitted_rates_stay_in_bounds(rows: list[tuple[int, int, int]]) -> None:
    scores = score_all(frame_of(rows))
    for column in ("m0_lr", "m1_lr_good", "m1_lr_bad", "m2_w_good", "m2_w_bad"):
        values = scores[column].to_numpy(dtype=float)
        defined = values[~np.isnan(values)]
        assert np.all((defined >= 0) & (defined <= 1)), column
    k = scores["m2_k"].to_numpy(dtype=float)
    assert np.all(np.isnan(k) | ((k >= K_BOUNDS[0]) & (k <= K_BOUNDS[1])))
    # Version 2: M2's effective rate w_v (1 + k EE/100) in [0, 1] on every trial.
    derived = derive_trials(frame_of(rows))
    valid = derived.loc[~derived["excluded"]]
    if not valid.empty:
        row = scores.iloc[0]
        w = np.where(valid["valence"] == "good", row["m2_w_good"], row["m2_w_bad"])
        rate = w * (1 + row["m2_k"] * valid["ee"].to_numpy(dtype=float) / 100)
        assert np.all((rate >= -1e-12) & (rate <= 1 + 1e-12)), rate


# Score version 2 (PROTOCOL.md "Score version 2").


def test_positive_events_invert_the_valence(make_session: MakeSession) -> None:
    # (E1, BR, E2): for a negative event BR < E1 is good news; for a positive
    # one (winning a prize) it is bad news. The update, a move toward the base
    # rate, is the same number either way.
    rows = [(50, 30, 40), (20, 40, 30), (60, 50, 62), (30, 30, 35)]
    negative = derive_trials(make_session(rows, polarity=["negative"] * 4))
    positive = derive_trials(make_session(rows, polarity=["positive"] * 4))
    assert list(negative["valence"]) == ["good", "bad", "good", "neutral"]
    assert list(positive["valence"]) == ["bad", "good", "bad", "neutral"]
    assert list(negative["update"][:3]) == list(positive["update"][:3]) == [10, 10, -2]
    assert pd.isna(positive["update"][3])
    # No polarity column, an empty cell and any case mean negative.
    plain = derive_trials(make_session(rows))
    mixed = derive_trials(make_session(rows, polarity=[None, "", "Negative", " POSITIVE "]))
    assert list(plain["valence"]) == list(negative["valence"])
    assert list(mixed["valence"]) == ["good", "bad", "good", "neutral"]
    assert list(mixed["update"][:3]) == [10, 10, -2]


def test_positive_events_in_the_scores(make_session: MakeSession) -> None:
    # Two negative events (good: update 10; bad: update 10) and two positive
    # ones, BR above E1 (good news, update 8) and below it (bad news, update 4).
    trials = make_session(
        [(50, 30, 40), (20, 40, 30), (20, 40, 28), (50, 30, 46)],
        polarity=["negative", "negative", "positive", "positive"],
        ebr1=[40, 30, 50, 30],
        ebr2=[34, 36, 58, 28],
    )
    row = score_all(trials).iloc[0]
    assert (row["n_good"], row["n_bad"]) == (2, 2)
    assert (row["update_good"], row["update_bad"]) == (9, 7)
    # eBR: negative BR 30 < eBR 40 good (+6), BR 40 > 30 bad (+6); positive BR
    # 40 < eBR 50 bad (50 -> 58 moves away: -8), BR 30 = eBR 30 not counted.
    assert (row["ebr_n_good"], row["ebr_n_bad"]) == (1, 2)
    assert (row["ebr_update_good"], row["ebr_update_bad"]) == (6, -1)
    assert (row["self_update_good_by_ebr"], row["self_update_bad_by_ebr"]) == (10, 9)
    # The model's regressor is BR - E1 whatever the polarity: the good-news
    # rate is the slope over the good trials, (-20 * -10 + 20 * 8) / 800.
    assert row["m1_lr_good"] == close(360 / 800)


def test_an_unknown_polarity_is_refused(make_session: MakeSession) -> None:
    with pytest.raises(ValueError, match="'positve' is not one of negative, positive"):
        derive_trials(make_session([(50, 30, 40), (20, 40, 30)], polarity=["positve", None]))


def bias_session(rows: list[tuple[int, int, int]], session: str = "S") -> pd.DataFrame:
    return frame_of(rows).assign(session=session)


# Good news (E1 50): (EE, update) = (10, 5), (20, 11), (30, 14); bad news (E1
# 20): (30, 13), (40, 15), (50, 21).
BIAS_ROWS = [(50, 40, 45), (50, 30, 39), (50, 20, 36), (20, 50, 33), (20, 60, 35), (20, 70, 41)]


def test_update_bias_ee_by_hand() -> None:
    row = score_all(bias_session(BIAS_ROWS)).iloc[0]
    assert row["update_bias"] == close(10 - 49 / 3)
    # Centred EE -10, 0, 10 in both valences; sum de * du = 90 (good) + 80
    # (bad), sum de^2 = 200 + 200: slope 170 / 400. The EE gap is 20 - 40, so
    # bad news' larger errors explained the raw bias: -19/3 + 0.425 * 20.
    assert row["update_bias_ee"] == close(13 / 6)


def test_update_bias_ee_undefined_cases() -> None:
    singular = [(50, 40, 45), (50, 40, 44), (20, 40, 30), (20, 40, 29)]  # EE 10 | 20 only
    one_bad = [(50, 40, 45), (50, 30, 39), (50, 20, 36), (20, 50, 33)]
    scores = score_all(
        pd.concat([bias_session(singular, "singular"), bias_session(one_bad, "one_bad")])
    )
    assert pd.isna(scores.loc["singular", "update_bias_ee"])
    assert scores.loc["singular", "update_bias"] == close(5.5 - 9.5)
    assert pd.isna(scores.loc["one_bad", "update_bias_ee"])


@PROPERTY_SETTINGS
@given(st.lists(sessions, min_size=1, max_size=4))
def test_update_bias_ee_matches_the_naive_regression(
    groups: list[list[tuple[int, int, int]]],
) -> None:
    frames = [
        bias_session([(e1, e1 + d, e1 + u) for e1, d, u in rows], f"s{i}")
        for i, rows in enumerate(groups)
    ]
    trials = pd.concat(frames, ignore_index=True)
    fast = score_all(trials)["update_bias_ee"]
    naive = update_bias_ee_naive(trials)
    assert list(fast.index) == list(naive.index)
    for a, b in zip(fast, naive, strict=True):
        assert same(a, b)


def test_best_model_needs_twelve_valid_trials(make_session: MakeSession) -> None:
    # Eleven valid trials (and a neutral one): fitted, not compared.
    rows = [(50, 50 - 3 * i, 50 - i) for i in range(1, 7)]
    rows += [(20, 20 + 3 * i, 20 + 2 * i) for i in range(1, 6)]
    eleven = make_session([*rows, (40, 40, 45)], session="eleven")
    twelve = make_session([*rows, (20, 38, 32)], session="twelve")
    scores = score_all(pd.concat([eleven, twelve], ignore_index=True))
    assert (scores.loc["eleven", "n_good"] + scores.loc["eleven", "n_bad"]) == 11
    assert scores.loc["eleven", "best_model"] is None
    assert "too_few_for_models" in scores.loc["eleven", "flags"]
    assert math.isfinite(scores.loc["eleven", "m1_bic"])
    assert scores.loc["twelve", "best_model"] == "M1"
    assert "too_few_for_models" not in scores.loc["twelve", "flags"]
