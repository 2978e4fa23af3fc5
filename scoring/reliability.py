"""Reliability of the scores: split-half per arm x timepoint, test-retest ICC(2,1).

PROTOCOL.md, "Group level, version 2":
- split-half: each session's valid trials ranked by block-1 position, the 1st,
  3rd, 5th ... against the 2nd, 4th, 6th ...; each half scored with the same
  formula as the whole session (scoring.metrics / scoring.fitting on the half's
  trials); Pearson r between the halves across the sessions of an arm x
  timepoint; reliability 2r / (1 + r) (Spearman-Brown);
- test-retest: ICC(2,1) (two-way random effects, absolute agreement, single
  measure; Shrout & Fleiss 1979) between each pair of timepoints, over the
  participants seen at both, pooled over arms.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from scoring.fitting import fit_sessions
from scoring.group import factor_levels
from scoring.metrics import ensure_derived, score_sessions

# The measures whose reliability is reported; a measure that the current
# score version does not compute is left out.
RELIABILITY_MEASURES: Final = ("update_bias", "update_bias_ee", "m1_lr_good", "m1_lr_bad")
# Pearson's r of fewer pairs says nothing.
MIN_SESSIONS: Final = 3

FloatArray = npt.NDArray[np.float64]


def _half_scores(trials: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores of the odd-ranked and the even-ranked valid trials of every session."""
    derived = ensure_derived(trials)
    valid = derived.loc[~derived["excluded"].astype(bool)].copy()
    position = pd.to_numeric(valid["block1_position"], errors="coerce")
    valid = valid.assign(_position=position).dropna(subset=["_position"])
    # Rank within the session by block-1 position (ties, which a real session
    # never has, broken by event so the split never depends on row order).
    valid = valid.sort_values(["session", "_position", "event"], kind="mergesort")
    rank = valid.groupby("session", sort=False).cumcount()
    halves = []
    for parity in (0, 1):
        half = valid.loc[(rank % 2 == parity).to_numpy()].drop(columns="_position")
        scores = score_sessions(half)
        fits = fit_sessions(half)
        halves.append(pd.concat([scores, fits], axis=1))
    return halves[0], halves[1]


def pearson(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[float, int]:
    """Pearson r over the pairs where both are finite, and their number."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    n = int(keep.sum())
    if n < MIN_SESSIONS:
        return math.nan, n
    a, b = a[keep] - a[keep].mean(), b[keep] - b[keep].mean()
    denominator = math.sqrt(float(a @ a) * float(b @ b))
    if denominator == 0:
        return math.nan, n
    return float(a @ b) / denominator, n


def spearman_brown(r: float) -> float:
    """Reliability of the whole from the correlation of its two halves."""
    return 2.0 * r / (1.0 + r) if math.isfinite(r) and r != -1.0 else math.nan


def split_half(
    trials: pd.DataFrame,
    *,
    arm_order: Sequence[str] | None = None,
    timepoint_order: Sequence[str] | None = None,
) -> list[dict[str, object]]:
    """Split-half reliability per arm x timepoint x measure: r, split_half, n_sessions.

    Needs the trials' block1_position (the trials export has it); a session's
    arm and timepoint are its first row's. Groups in the given orders (sorted
    without them).
    """
    if "block1_position" not in trials.columns:
        raise ValueError("split-half reliability needs the trials' block1_position column")
    first, second = _half_scores(trials)
    keys = trials.groupby("session", sort=False)[["arm", "timepoint"]].first()
    keys = keys.astype(str).where(keys.notna(), "")
    measures = [m for m in RELIABILITY_MEASURES if m in first.columns]
    out: list[dict[str, object]] = []
    for arm in factor_levels(keys["arm"], arm_order, "arm"):
        for timepoint in factor_levels(keys["timepoint"], timepoint_order, "timepoint"):
            sessions = keys.index[(keys["arm"] == arm) & (keys["timepoint"] == timepoint)]
            if sessions.empty:
                continue
            for measure in measures:
                r, n = pearson(first[measure].reindex(sessions), second[measure].reindex(sessions))
                out.append(
                    {
                        "arm": arm,
                        "timepoint": timepoint,
                        "measure": measure,
                        "r": _finite(r),
                        "split_half": _finite(spearman_brown(r)),
                        "n_sessions": n,
                    }
                )
    return out


def icc_2_1(ratings: npt.ArrayLike) -> float:
    """ICC(2,1) of an (n subjects x k occasions) table without missing cells.

    Shrout & Fleiss (1979), case 2, single measure:
    (MSR - MSE) / (MSR + (k - 1) MSE + k (MSC - MSE) / n).
    """
    table = np.asarray(ratings, dtype=np.float64)
    n, k = table.shape
    if n < 2 or k < 2:
        return math.nan
    grand = table.mean()
    rows = table.mean(axis=1)
    cols = table.mean(axis=0)
    ss_rows = k * float(((rows - grand) ** 2).sum())
    ss_cols = n * float(((cols - grand) ** 2).sum())
    ss_total = float(((table - grand) ** 2).sum())
    ss_error = ss_total - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_error / ((n - 1) * (k - 1))
    denominator = msr + (k - 1) * mse + k * (msc - mse) / n
    return (msr - mse) / denominator if denominator != 0 else math.nan


def retest_icc(
    scores: pd.DataFrame, *, timepoint_order: Sequence[str] | None = None
) -> list[dict[str, object]]:
    """ICC(2,1) per measure and pair of timepoints over participants seen at both.

    ``scores`` has one row per session with participant, timepoint and the
    measures (pooled over arms). A participant with two sessions at one
    timepoint (a lab re-run) counts with the mean of them.
    """
    if scores.empty:
        return []
    timepoints = factor_levels(scores["timepoint"].dropna(), timepoint_order, "timepoint")
    measures = [m for m in RELIABILITY_MEASURES if m in scores.columns]
    out: list[dict[str, object]] = []
    for measure in measures:
        values = pd.to_numeric(scores[measure], errors="coerce")
        frame = pd.DataFrame(
            {
                "participant": scores["participant"].astype(str),
                "timepoint": scores["timepoint"].astype(str),
                "value": values,
            }
        ).dropna()
        wide = frame.pivot_table(
            index="participant", columns="timepoint", values="value", aggfunc="mean"
        )
        for first, second in itertools.combinations(timepoints, 2):
            if first not in wide.columns or second not in wide.columns:
                pair = np.empty((0, 2))
            else:
                pair = wide[[first, second]].dropna().to_numpy(dtype=np.float64)
            out.append(
                {
                    "measure": measure,
                    "timepoints": [first, second],
                    "icc": _finite(icc_2_1(pair)) if len(pair) >= MIN_SESSIONS else None,
                    "n_participants": int(len(pair)),
                }
            )
    return out


def _finite(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)
