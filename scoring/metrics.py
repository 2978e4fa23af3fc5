"""Trial derivation and per-session scores of the belief-updating task.

PROTOCOL.md, "Scoring one session" (score version 1) and "Score version 2",
is the specification; this module computes the current version (SCORE_VERSION).
Everything here is vectorised over sessions: per-session figures are sums over
integer session codes (``np.bincount``), never a Python loop per session, so
that ten thousand sessions score in about a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from scoring.columns import (  # re-exported: the public names of scores
    CONSTANT_MIN_TRIALS as CONSTANT_MIN_TRIALS,
    COUNT_COLUMNS as COUNT_COLUMNS,
    DEFAULT_POLARITY as DEFAULT_POLARITY,
    DERIVED_COLUMNS as DERIVED_COLUMNS,
    EXCLUSION_REASONS as EXCLUSION_REASONS,
    FAST_RT_MS as FAST_RT_MS,
    FLAG_NAMES as FLAG_NAMES,
    LR_MAX_DEFAULT as LR_MAX_DEFAULT,
    MAX_AWAY_FRACTION as MAX_AWAY_FRACTION,
    METRIC_COLUMNS as METRIC_COLUMNS,
    MIN_TRIALS_FOR_BIAS_EE as MIN_TRIALS_FOR_BIAS_EE,
    MIN_TRIALS_FOR_MODELS as MIN_TRIALS_FOR_MODELS,
    MIN_TRIALS_FOR_R as MIN_TRIALS_FOR_R,
    MIN_VALID_PER_VALENCE as MIN_VALID_PER_VALENCE,
    MODEL_COLUMNS as MODEL_COLUMNS,
    MODEL_EXTRA_COLUMNS as MODEL_EXTRA_COLUMNS,
    POLARITIES as POLARITIES,
    REQUIRED_COLUMNS as REQUIRED_COLUMNS,
    SCORE_COLUMNS as SCORE_COLUMNS,
    SCORE_VERSION as SCORE_VERSION,
    V2_METRIC_COLUMNS as V2_METRIC_COLUMNS,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class SessionScores:
    """One session's scores; field names and order are SCORE_COLUMNS."""

    n_good: int
    n_bad: int
    n_excluded: int
    update_good: float
    update_bad: float
    update_bias: float
    ee_good: float
    ee_bad: float
    mean_e1: float
    alpha_good: float
    alpha_bad: float
    norm_update_good: float
    norm_update_bad: float
    learn_r_good: float
    learn_r_bad: float
    memory_error: float
    rt_e1_mean_ms: float
    rt_e2_mean_ms: float
    ebr_update_bias: float
    m0_lr: float
    m0_bic: float
    m1_lr_good: float
    m1_lr_bad: float
    m1_scaling: float
    m1_asymmetry: float
    m1_bic: float
    m2_w_good: float
    m2_w_bad: float
    m2_k: float
    m2_bic: float
    best_model: str | None
    flags: tuple[str, ...]
    m0_sigma: float
    m0_loglik: float
    m0_aic: float
    m1_sigma: float
    m1_loglik: float
    m1_aic: float
    m2_sigma: float
    m2_loglik: float
    m2_aic: float
    update_bias_ee: float
    ebr_n_good: int
    ebr_n_bad: int
    ebr_update_good: float
    ebr_update_bad: float
    self_update_good_by_ebr: float
    self_update_bad_by_ebr: float

    @classmethod
    def from_row(cls, row: pd.Series) -> SessionScores:
        """Build from one row of score_all's result."""
        values: dict[str, Any] = {}
        for name in SCORE_COLUMNS:
            value = row[name]
            if name in COUNT_COLUMNS:
                values[name] = int(value)
            elif name == "flags":
                values[name] = tuple(value)
            elif name == "best_model":
                values[name] = value if isinstance(value, str) else None
            else:
                values[name] = float(value)
        return cls(**values)


def session_index(trials: pd.DataFrame) -> tuple[IntArray, pd.Index]:
    """Integer code per trial row and the sessions in order of first appearance."""
    if "session" not in trials.columns:
        raise ValueError("trials have no 'session' column")
    codes, uniques = pd.factorize(trials["session"], sort=False, use_na_sentinel=False)
    index = pd.Index(uniques, name="session")
    return np.asarray(codes, dtype=np.intp), index


def _numeric(trials: pd.DataFrame, column: str) -> FloatArray:
    """Float values of a column; an absent column or a non-number is missing."""
    if column not in trials.columns:
        return np.full(len(trials), np.nan)
    values = pd.to_numeric(trials[column], errors="coerce")
    return np.asarray(values, dtype=np.float64)


def _practice(trials: pd.DataFrame) -> BoolArray:
    """The practice column as booleans; absent or missing means a scored trial."""
    if "practice" not in trials.columns:
        return np.zeros(len(trials), dtype=np.bool_)
    column = trials["practice"]
    try:
        flags = column.astype("boolean").fillna(False)
        return np.asarray(flags, dtype=np.bool_)
    except (TypeError, ValueError):
        # Text from a hand-made file ("yes", "TRUE", ...) that pandas' nullable
        # boolean refuses.
        text = column.astype("string").str.strip().str.lower()
        truthy = text.isin(["true", "t", "yes", "y", "1", "1.0"]).fillna(False)
        return np.asarray(truthy, dtype=np.bool_)


def _positive(trials: pd.DataFrame) -> BoolArray:
    """True for a positive event; an absent column or an empty cell is negative.

    A value that is neither polarity is refused rather than read as negative: it
    would silently invert the valence of a positive event.
    """
    if "polarity" not in trials.columns:
        return np.zeros(len(trials), dtype=np.bool_)
    text = trials["polarity"].astype("string").str.strip().str.lower().fillna(DEFAULT_POLARITY)
    text = text.mask(text == "", DEFAULT_POLARITY)
    unknown = ~text.isin(POLARITIES)
    if bool(unknown.any()):
        first = trials["polarity"][unknown.to_numpy()].iloc[0]
        raise ValueError(f"polarity {first!r} is not one of {', '.join(POLARITIES)}")
    return np.asarray(text == "positive", dtype=np.bool_)


def _valence(
    estimate: FloatArray, base_rate: FloatArray, positive: BoolArray
) -> tuple[npt.NDArray[np.str_], BoolArray, BoolArray]:
    """Valence labels and good / bad masks for base rate versus estimate.

    For a negative event a base rate below the estimate is good news; for a
    positive event it is bad news.
    """
    below = base_rate < estimate
    above = base_rate > estimate
    good = np.where(positive, above, below)
    bad = np.where(positive, below, above)
    neutral = base_rate == estimate
    labels = np.select([good, bad, neutral], ["good", "bad", "neutral"], default="")
    return labels, good, bad


def toward_base_rate(first: FloatArray, base_rate: FloatArray, second: FloatArray) -> FloatArray:
    """sign(BR - first) * (second - first): a move toward the base rate is positive.

    Whatever the event's polarity; for a negative event it is version 1's E1 - E2
    after good news and E2 - E1 after bad news. 0 where BR == first.
    """
    update: FloatArray = np.sign(base_rate - first) * (second - first)
    return update


def _update(
    good: BoolArray, bad: BoolArray, first: FloatArray, base_rate: FloatArray, second: FloatArray
) -> FloatArray:
    """The update of good and bad news trials; NaN for neutral or incomplete trials."""
    return np.where(good | bad, toward_base_rate(first, base_rate, second), np.nan)


def derive_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Copy of the trials with valence, EE, update and exclusion columns added.

    Existing derived columns (an export carries some) are recomputed, so the
    result always follows this score version. A value that is not a number
    counts as missing; reading a file strictly is scoring.io's job. An optional
    ``polarity`` column (negative, the default, or positive) sets the valence
    rule per event; any other polarity is a ValueError.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in trials.columns]
    if missing:
        raise ValueError(f"trials lack required column(s): {', '.join(missing)}")
    out = trials.copy()
    e1 = _numeric(out, "e1")
    br = _numeric(out, "br")
    e2 = _numeric(out, "e2")
    practice = _practice(out)
    positive = _positive(out)

    valence, good, bad = _valence(e1, br, positive)
    reason = np.select(
        [practice, np.isnan(e1), np.isnan(br), np.isnan(e2), valence == "neutral"],
        list(EXCLUSION_REASONS),
        default="",
    )
    out["valence"] = valence
    out["ee"] = np.abs(e1 - br)
    out["signed_error"] = e1 - br
    out["update"] = _update(good, bad, e1, br, e2)
    out["excluded"] = reason != ""
    out["exclusion_reason"] = reason

    ebr1 = _numeric(out, "ebr1")
    ebr2 = _numeric(out, "ebr2")
    ebr_valence, ebr_good, ebr_bad = _valence(ebr1, br, positive)
    out["ebr_valence"] = ebr_valence
    out["ebr_update"] = _update(ebr_good, ebr_bad, ebr1, br, ebr2)
    return out


def ensure_derived(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials as they are when already derived, else derive_trials(trials)."""
    if all(c in trials.columns for c in DERIVED_COLUMNS):
        return trials
    return derive_trials(trials)


def sum_by(codes: IntArray, weights: FloatArray, n_sessions: int) -> FloatArray:
    """Sum of weights per session code (0 for a session without any)."""
    total = np.bincount(codes, weights=weights, minlength=n_sessions)
    return np.asarray(total, dtype=np.float64)


class _Grouper:
    """Per-session reductions over integer session codes."""

    def __init__(self, codes: IntArray, n_sessions: int) -> None:
        self.codes = codes
        self.n = n_sessions

    def count(self, mask: BoolArray) -> FloatArray:
        return sum_by(self.codes[mask], np.ones(int(mask.sum())), self.n)

    def total(self, values: FloatArray, mask: BoolArray) -> FloatArray:
        return sum_by(self.codes[mask], values[mask], self.n)

    def mean(self, values: FloatArray, mask: BoolArray) -> FloatArray:
        return _ratio(self.total(values, mask), self.count(mask))

    def pearson(self, x: FloatArray, y: FloatArray, mask: BoolArray) -> FloatArray:
        """Pearson r per session; NaN under MIN_TRIALS_FOR_R or no variance."""
        n = self.count(mask)
        codes = self.codes[mask]
        dx = x[mask] - self.mean(x, mask)[codes]
        dy = y[mask] - self.mean(y, mask)[codes]
        sxx = sum_by(codes, dx * dx, self.n)
        syy = sum_by(codes, dy * dy, self.n)
        sxy = sum_by(codes, dx * dy, self.n)
        # Centred sums of identical floats are not exactly 0 (the mean is
        # rounded), so "no variance" is tested relative to the values' size.
        xx = sum_by(codes, x[mask] ** 2, self.n)
        yy = sum_by(codes, y[mask] ** 2, self.n)
        varied = (sxx > 1e-12 * xx) & (syy > 1e-12 * yy) & (n >= MIN_TRIALS_FOR_R)
        r: FloatArray = np.clip(_ratio(sxy, np.sqrt(sxx * syy), where=varied), -1, 1)
        return r

    def median(self, values: FloatArray, mask: BoolArray) -> FloatArray:
        codes = self.codes[mask]
        kept = values[mask]
        order = np.lexsort((kept, codes))
        ordered = kept[order]
        counts = np.bincount(codes, minlength=self.n)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        out = np.full(self.n, np.nan)
        has = counts > 0
        low = starts[has] + (counts[has] - 1) // 2
        high = starts[has] + counts[has] // 2
        out[has] = (ordered[low] + ordered[high]) / 2.0
        return out

    def is_constant(self, values: FloatArray, mask: BoolArray) -> BoolArray:
        """True where a session has CONSTANT_MIN_TRIALS answers, all equal."""
        codes = self.codes[mask]
        kept = values[mask]
        low = np.full(self.n, np.inf)
        high = np.full(self.n, -np.inf)
        np.minimum.at(low, codes, kept)
        np.maximum.at(high, codes, kept)
        constant: BoolArray = (self.count(mask) >= CONSTANT_MIN_TRIALS) & (low == high)
        return constant


def _ratio(
    numerator: FloatArray, denominator: FloatArray, where: BoolArray | None = None
) -> FloatArray:
    """Element-wise quotient, NaN where the denominator is 0 or masked out."""
    ok = denominator != 0
    if where is not None:
        ok = ok & where
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=ok)
    return out


def _flag_tuples(flags: dict[str, BoolArray], n_sessions: int) -> list[tuple[str, ...]]:
    """Sorted flag names per session, built once per distinct combination."""
    names = sorted(flags)
    bits = np.zeros(n_sessions, dtype=np.int64)
    for position, name in enumerate(names):
        bits |= flags[name].astype(np.int64) << position
    combinations = {
        int(b): tuple(n for i, n in enumerate(names) if int(b) >> i & 1) for b in np.unique(bits)
    }
    return [combinations[int(b)] for b in bits]


def _update_bias_ee(
    g: _Grouper, update: FloatArray, ee: FloatArray, good: BoolArray, bad: BoolArray
) -> FloatArray:
    """Coefficient of good news in update ~ 1 + good + EE, per session.

    The least-squares fit in closed form (the one-way ANCOVA): with c the
    pooled within-valence slope of update on EE, the coefficient is
    (mean update good - mean update bad) - c (mean EE good - mean EE bad). The
    design is singular exactly when EE is constant within each valence (then
    no within slope exists), and NaN is returned there and under
    MIN_TRIALS_FOR_BIAS_EE trials of either valence.
    """
    valid = good | bad
    codes = g.codes[valid]
    is_good = good[valid]
    mean_update = np.where(is_good, g.mean(update, good)[codes], g.mean(update, bad)[codes])
    mean_ee = np.where(is_good, g.mean(ee, good)[codes], g.mean(ee, bad)[codes])
    de = ee[valid] - mean_ee
    du = update[valid] - mean_update
    sxx = sum_by(codes, de * de, g.n)
    sxy = sum_by(codes, de * du, g.n)
    # As in _Grouper.pearson: a centred sum of equal values is rounding, not variance.
    varied = sxx > 1e-12 * sum_by(codes, ee[valid] ** 2, g.n)
    enough = (g.count(good) >= MIN_TRIALS_FOR_BIAS_EE) & (g.count(bad) >= MIN_TRIALS_FOR_BIAS_EE)
    slope = _ratio(sxy, sxx, where=varied & enough)
    raw_bias = g.mean(update, good) - g.mean(update, bad)
    ee_gap = g.mean(ee, good) - g.mean(ee, bad)
    bias: FloatArray = raw_bias - slope * ee_gap
    return bias


def update_bias_ee_naive(trials: pd.DataFrame) -> pd.Series:
    """Reference for update_bias_ee: one np.linalg.lstsq per session (slow)."""
    derived = ensure_derived(trials)
    valid = derived.loc[~np.asarray(derived["excluded"], dtype=np.bool_)]
    _, index = session_index(derived)
    found: dict[object, float] = {}
    for session, rows in valid.groupby("session", sort=False):
        good = (rows["valence"] == "good").to_numpy(dtype=np.float64)
        if good.sum() < MIN_TRIALS_FOR_BIAS_EE or (1 - good).sum() < MIN_TRIALS_FOR_BIAS_EE:
            continue
        design = np.column_stack([np.ones(len(rows)), good, rows["ee"].to_numpy(dtype=float)])
        if np.linalg.matrix_rank(design) < 3:
            continue
        coefficients = np.linalg.lstsq(design, rows["update"].to_numpy(dtype=float), rcond=None)
        found[session] = float(coefficients[0][1])
    return pd.Series([found.get(s, math.nan) for s in index], index=index, name="update_bias_ee")


def score_sessions(
    trials: pd.DataFrame,
    *,
    min_valid_per_valence: int = MIN_VALID_PER_VALENCE,
    fast_rt_ms: float = FAST_RT_MS,
    max_away_fraction: float = MAX_AWAY_FRACTION,
) -> pd.DataFrame:
    """Per-session descriptive scores and flags (no model fits), indexed by session.

    Definitions that PROTOCOL.md leaves open, decided here:
    - n_excluded counts every excluded row, practice included, so that
      n_good + n_bad + n_excluded is the session's number of rows and matches
      the trials export's ``excluded`` column;
    - mean_e1 is over every non-practice trial with an E1, neutral trials and
      trials without E2 included: it describes the participant's priors, not
      the update;
    - memory_error and the reaction times are over non-practice trials where
      the value is present, whatever the trial's valence;
    - ebr_update_bias uses its own validity: non-practice trials with eBR1, BR
      and eBR2 present and BR != eBR1, whether or not E2 was answered; so do
      version 2's ebr_n_* and ebr_update_* (PROTOCOL.md says so);
    - self_update_*_by_ebr average the self update sign(BR - E1) (E2 - E1) over
      those eBR trials that have E1 and E2, a trial with E1 == BR counting 0
      (no move is asked of it), as PROTOCOL.md's formula gives.
    """
    derived = ensure_derived(trials)
    codes, index = session_index(derived)
    g = _Grouper(codes, len(index))

    excluded = np.asarray(derived["excluded"], dtype=np.bool_)
    valence = np.asarray(derived["valence"], dtype=np.str_)
    valid = ~excluded
    valid_good = valid & (valence == "good")
    valid_bad = valid & (valence == "bad")
    update = np.asarray(derived["update"], dtype=np.float64)
    ee = np.asarray(derived["ee"], dtype=np.float64)
    practice = _practice(derived)
    scored = ~practice
    e1 = _numeric(derived, "e1")
    e2 = _numeric(derived, "e2")
    br = _numeric(derived, "br")

    n_good = g.count(valid_good)
    n_bad = g.count(valid_bad)
    n_valid = n_good + n_bad
    update_good = g.mean(update, valid_good)
    update_bad = g.mean(update, valid_bad)
    # update / EE is defined for every valid trial: EE > 0 off neutral trials.
    normalised = _ratio(update, ee)

    memory_gap = np.abs(_numeric(derived, "memory") - br)
    rt_e1 = _numeric(derived, "rt_e1_ms")
    rt_e2 = _numeric(derived, "rt_e2_ms")

    ebr_valence = np.asarray(derived["ebr_valence"], dtype=np.str_)
    ebr_update = np.asarray(derived["ebr_update"], dtype=np.float64)
    ebr_ok = scored & ~np.isnan(ebr_update)
    ebr_good = ebr_ok & (ebr_valence == "good")
    ebr_bad = ebr_ok & (ebr_valence == "bad")
    ebr_update_good = g.mean(ebr_update, ebr_good)
    ebr_update_bad = g.mean(ebr_update, ebr_bad)
    self_update = toward_base_rate(e1, br, e2)
    has_self = ~np.isnan(self_update)

    columns: dict[str, object] = {
        "n_good": n_good.astype(np.int64),
        "n_bad": n_bad.astype(np.int64),
        "n_excluded": g.count(excluded).astype(np.int64),
        "update_good": update_good,
        "update_bad": update_bad,
        "update_bias": update_good - update_bad,
        "ee_good": g.mean(ee, valid_good),
        "ee_bad": g.mean(ee, valid_bad),
        "mean_e1": g.mean(e1, scored & ~np.isnan(e1)),
        "alpha_good": _ratio(g.total(update * ee, valid_good), g.total(ee * ee, valid_good)),
        "alpha_bad": _ratio(g.total(update * ee, valid_bad), g.total(ee * ee, valid_bad)),
        "norm_update_good": g.mean(normalised, valid_good),
        "norm_update_bad": g.mean(normalised, valid_bad),
        "learn_r_good": g.pearson(update, ee, valid_good),
        "learn_r_bad": g.pearson(update, ee, valid_bad),
        "memory_error": g.mean(memory_gap, scored & ~np.isnan(memory_gap)),
        "rt_e1_mean_ms": g.mean(rt_e1, scored & ~np.isnan(rt_e1)),
        "rt_e2_mean_ms": g.mean(rt_e2, scored & ~np.isnan(rt_e2)),
        "ebr_update_bias": ebr_update_good - ebr_update_bad,
        "update_bias_ee": _update_bias_ee(g, update, ee, valid_good, valid_bad),
        "ebr_n_good": g.count(ebr_good).astype(np.int64),
        "ebr_n_bad": g.count(ebr_bad).astype(np.int64),
        "ebr_update_good": ebr_update_good,
        "ebr_update_bad": ebr_update_bad,
        "self_update_good_by_ebr": g.mean(self_update, ebr_good & has_self),
        "self_update_bad_by_ebr": g.mean(self_update, ebr_bad & has_self),
    }

    away = g.count(valid & (update < 0))
    fast = (g.median(rt_e1, scored & ~np.isnan(rt_e1)) < fast_rt_ms) | (
        g.median(rt_e2, scored & ~np.isnan(rt_e2)) < fast_rt_ms
    )
    flags = {
        "constant_e1": g.is_constant(e1, scored & ~np.isnan(e1)),
        "constant_e2": g.is_constant(e2, scored & ~np.isnan(e2)),
        "fast_rt": fast,
        "many_away": (n_valid > 0) & (away > max_away_fraction * np.maximum(n_valid, 1)),
        "no_valid_trials": n_valid == 0,
        "too_few_bad": n_bad < min_valid_per_valence,
        "too_few_for_models": n_valid < MIN_TRIALS_FOR_MODELS,
        "too_few_good": n_good < min_valid_per_valence,
    }
    result = pd.DataFrame(columns, index=index)
    result["flags"] = pd.Series(_flag_tuples(flags, len(index)), index=index, dtype=object)
    return result


def join_flags(flags: object) -> str:
    """The export form of a flags value: names joined by ';'."""
    if isinstance(flags, str):
        return flags
    if isinstance(flags, (tuple, list)):
        return ";".join(str(f) for f in flags)
    return ""


def scores_for_export(scores: pd.DataFrame) -> pd.DataFrame:
    """Scores as a flat table: session first, flags ';'-joined, no model as ''."""
    out = scores.reset_index()
    if "flags" in out.columns:
        out["flags"] = [join_flags(f) for f in out["flags"]]
    if "best_model" in out.columns:
        out["best_model"] = [m if isinstance(m, str) else "" for m in out["best_model"]]
    return out
