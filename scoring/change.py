"""The paper's second result: change in depression against change in belief updating.

Pure (no Django). PROTOCOL.md, Questionnaires: per participant, the change from the first
visit in the MADRS total against the change in good-news learning (`m1_lr_good`,
`update_good`) and in the update bias (`update_bias`, and `update_bias_ee` where the
scores have it), with Pearson and Spearman correlations and 95 % confidence intervals,
per arm (and per later visit: each later visit is compared with the first).

Confidence intervals use Fisher's z: z = atanh(r), standard error 1 / sqrt(n - 3) for
Pearson's r and sqrt(1.06 / (n - 3)) for Spearman's rho (Fieller, Hartley & Pearson
1957, the usual large-sample approximation), back-transformed with tanh. Fewer than 4
participants give no interval; fewer than 3, no correlation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Final

import numpy as np
import pandas as pd
from scipy import stats

MEASURES: Final = ("m1_lr_good", "update_good", "update_bias", "update_bias_ee")
Z_95: Final = 1.959963984540054  # the standard normal's 0.975 quantile
SPEARMAN_VARIANCE: Final = 1.06


@dataclass(frozen=True, slots=True)
class Correlation:
    n: int
    pearson_r: float
    pearson_ci_low: float
    pearson_ci_high: float
    pearson_p: float
    spearman_r: float
    spearman_ci_low: float
    spearman_ci_high: float
    spearman_p: float

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def fisher_ci(r: float, n: int, *, variance: float = 1.0) -> tuple[float, float]:
    """The 95 % interval of a correlation by Fisher's z (NaN when n < 4 or r is NaN)."""
    if n < 4 or math.isnan(r):
        return math.nan, math.nan
    if abs(r) >= 1.0:
        return r, r
    z = math.atanh(r)
    half = Z_95 * math.sqrt(variance / (n - 3))
    return math.tanh(z - half), math.tanh(z + half)


def correlate(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> Correlation:
    """Pearson and Spearman correlations of the pairs where both are finite, with CIs."""
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    n = int(xs.size)
    nan = math.nan
    if n < 3 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return Correlation(n, nan, nan, nan, nan, nan, nan, nan, nan)
    pearson = stats.pearsonr(xs, ys)
    spearman = stats.spearmanr(xs, ys)
    r = float(pearson.statistic)
    rho = float(spearman.statistic)
    low, high = fisher_ci(r, n)
    s_low, s_high = fisher_ci(rho, n, variance=SPEARMAN_VARIANCE)
    return Correlation(
        n, r, low, high, float(pearson.pvalue), rho, s_low, s_high, float(spearman.pvalue)
    )


def change_from_first(
    frame: pd.DataFrame, *, outcome: str, measures: Sequence[str]
) -> pd.DataFrame:
    """Per participant and later visit: the change since the participant's first visit.

    `frame` has one row per participant x timepoint: participant, arm, timepoint,
    timepoint_order, the outcome column and the measure columns (NaN where missing).
    The first visit is the participant's lowest timepoint_order with the outcome.
    Returns participant, arm, timepoint, timepoint_order, d_<outcome>, d_<measure>...
    """
    columns = ["participant", "arm", "timepoint", "timepoint_order", f"d_{outcome}"]
    columns += [f"d_{m}" for m in measures]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    data = frame.sort_values(["participant", "timepoint_order"])
    first = data[data[outcome].notna()].groupby("participant").head(1).set_index("participant")
    later = data.merge(
        first[["timepoint_order", outcome, *measures]],
        left_on="participant",
        right_index=True,
        suffixes=("", "_first"),
    )
    later = later[later["timepoint_order"] > later["timepoint_order_first"]]
    out = later[["participant", "arm", "timepoint", "timepoint_order"]].copy()
    for name in (outcome, *measures):
        out[f"d_{name}"] = later[name].astype(float) - later[f"{name}_first"].astype(float)
    return out.reset_index(drop=True)[columns]


def change_correlations(
    changes: pd.DataFrame, *, outcome: str, measures: Sequence[str]
) -> list[dict[str, object]]:
    """Per arm x later timepoint x measure: r(change in outcome, change in measure)."""
    rows: list[dict[str, object]] = []
    if changes.empty:
        return rows
    keys = ["arm", "timepoint_order", "timepoint"]
    for (arm, _order, timepoint), group in changes.groupby(keys, sort=True):
        for measure in measures:
            result = correlate(
                group[f"d_{measure}"].to_numpy(dtype=np.float64),
                group[f"d_{outcome}"].to_numpy(dtype=np.float64),
            )
            rows.append(
                {"arm": arm, "timepoint": timepoint, "measure": measure, **result.to_dict()}
            )
    return rows
