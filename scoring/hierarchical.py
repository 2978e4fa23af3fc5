"""Hierarchical (empirical-Bayes) fits of M0, M1 and M2 with a group prior per arm x timepoint.

PROTOCOL.md, "Group level, version 2": with 40 trials and answer noise sd 8 the
per-session maximum-likelihood rates are noisy; fitting the sessions of a group
together, each session's rates drawn from the group's distribution, pulls the
noisy ones toward the group and makes every estimate better on average.

Why this is exact rather than an approximation of a generic hierarchical
model: for a fixed noise sd, each model's log-likelihood is a quadratic in its
rates (scoring.fitting's module docstring), so session s's data say
``rate ~ Normal(b_s, se_s^2)`` with b_s the unclipped least-squares slope and
se_s = sigma_s / sqrt(sum x^2). With a Normal(mu_g, tau_g^2) prior per group g
the posterior of each rate is Normal, and the rate's bound [0, 1] makes it a
truncated Normal, whose mean and sd are reported. The group prior (mu_g,
tau_g) is estimated by type-II maximum likelihood (EM on the marginal
b_s ~ Normal(mu_g, tau_g^2 + se_s^2)), the standard empirical-Bayes choice;
the group mean's uncertainty is its marginal-likelihood standard error. sigma_s
is the session's residual sd with the degrees of freedom of its model, floored
like every fit (SIGMA_FLOOR).

M2's w_good, w_bad are shrunk the same way given each session's ML k (M2 is
linear in w for a fixed k); k itself is not shrunk.

Everything is vectorised over sessions: 5,000 sessions take well under a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special

from scoring.fitting import SIGMA_FLOOR, _valid_trials, fit_sessions
from scoring.metrics import FloatArray, IntArray

# DESIGN.md, "Export columns": the score columns the hierarchical fit fills.
HB_COLUMNS: Final = (
    "hb_m0_lr",
    "hb_m1_lr_good",
    "hb_m1_lr_bad",
    "hb_m1_lr_good_sd",
    "hb_m1_lr_bad_sd",
)
# The rest of what it computes, kept out of the export's contract.
HB_EXTRA_COLUMNS: Final = ("hb_m0_lr_sd", "hb_m2_w_good", "hb_m2_w_bad", "hb_m2_k")
GROUP_COLUMNS: Final = ("arm", "timepoint", "model", "parameter", "n_sessions", "mean", "se", "sd")
EM_ITERATIONS: Final = 500
EM_TOLERANCE: Final = 1e-10
# tau^2 is kept above this so that a group whose sessions agree perfectly does
# not collapse the prior to a point (and the EM's fixed point at 0).
MIN_TAU2: Final = 1e-8


@dataclass(frozen=True)
class Prior:
    """A group prior per group code: mean, sd, and the standard error of the mean."""

    mean: FloatArray
    sd: FloatArray
    se: FloatArray
    n: FloatArray


def group_prior(slope: FloatArray, se: FloatArray, groups: IntArray, n_groups: int) -> Prior:
    """Type-II ML of Normal(mu_g, tau_g^2) from slopes with known standard errors (EM).

    A session without information on the rate (se infinite or NaN) leaves
    its group's prior alone.
    """
    informative = np.isfinite(slope) & np.isfinite(se) & (se > 0)
    b = np.where(informative, slope, 0.0)
    precision = np.where(informative, 1.0 / np.where(informative, se, 1.0) ** 2, 0.0)
    weight = informative.astype(np.float64)
    n = np.asarray(np.bincount(groups, weights=weight, minlength=n_groups), dtype=np.float64)

    def by_group(values: FloatArray) -> FloatArray:
        total = np.bincount(groups, weights=values * weight, minlength=n_groups)
        return np.asarray(total, dtype=np.float64)

    has = n > 0
    safe_n = np.where(has, n, 1.0)
    mu = by_group(b) / safe_n
    tau2 = np.maximum(by_group((b - mu[groups]) ** 2) / safe_n, MIN_TAU2)
    for _ in range(EM_ITERATIONS):
        post_precision = precision + 1.0 / tau2[groups]
        post_mean = (precision * b + mu[groups] / tau2[groups]) / post_precision
        new_mu = by_group(post_mean) / safe_n
        new_tau2 = by_group((post_mean - new_mu[groups]) ** 2 + 1.0 / post_precision) / safe_n
        new_tau2 = np.maximum(new_tau2, MIN_TAU2)
        done = (
            np.max(np.abs(new_mu - mu)) < EM_TOLERANCE
            and np.max(np.abs(new_tau2 - tau2)) < EM_TOLERANCE
        )
        mu, tau2 = new_mu, new_tau2
        if done:
            break
    marginal_precision = by_group(1.0 / (tau2[groups] + np.where(informative, se, 1.0) ** 2))
    se_mu = np.where(has, 1.0 / np.sqrt(np.where(has, marginal_precision, 1.0)), np.nan)
    return Prior(
        mean=np.where(has, mu, np.nan),
        sd=np.where(has, np.sqrt(tau2), np.nan),
        se=se_mu,
        n=n,
    )


def truncated_normal(
    mean: FloatArray, sd: FloatArray, low: float = 0.0, high: float = 1.0
) -> tuple[FloatArray, FloatArray]:
    """Mean and sd of Normal(mean, sd^2) truncated to [low, high], stable in the tails."""
    alpha = (low - mean) / sd
    beta = (high - mean) / sd
    # log Z = log(Phi(beta) - Phi(alpha)), computed on the side that keeps precision.
    upper = alpha > 0  # both bounds above the mean: use the upper tail
    a = np.where(upper, -beta, alpha)
    c = np.where(upper, -alpha, beta)
    log_z = special.log_ndtr(c) + np.log1p(-np.exp(special.log_ndtr(a) - special.log_ndtr(c)))
    phi_a = np.exp(-0.5 * alpha**2 - 0.5 * math.log(2 * math.pi) - log_z)
    phi_b = np.exp(-0.5 * beta**2 - 0.5 * math.log(2 * math.pi) - log_z)
    shift = phi_a - phi_b
    with np.errstate(invalid="ignore"):
        spread = np.where(np.isfinite(alpha), alpha * phi_a, 0.0) - np.where(
            np.isfinite(beta), beta * phi_b, 0.0
        )
    variance = sd**2 * np.maximum(1.0 + spread - shift**2, 0.0)
    out_mean: FloatArray = np.clip(mean + sd * shift, low, high)
    out_sd: FloatArray = np.sqrt(variance)
    return out_mean, out_sd


@dataclass(frozen=True)
class HierarchicalFit:
    """Shrunk per-session parameters and the group priors they were shrunk toward."""

    sessions: pd.DataFrame  # index session: HB_COLUMNS + HB_EXTRA_COLUMNS
    groups: pd.DataFrame  # GROUP_COLUMNS

    def groups_records(self) -> list[dict[str, object]]:
        """The group table as JSON-ready records (NaN as None)."""
        records: list[dict[str, object]] = []
        for row in self.groups.to_dict(orient="records"):
            records.append(
                {
                    str(k): (None if isinstance(v, float) and math.isnan(v) else v)
                    for k, v in row.items()
                }
            )
        return records


def _shrink(
    sxy: FloatArray,
    sxx: FloatArray,
    sigma: FloatArray,
    groups: IntArray,
    n_groups: int,
) -> tuple[FloatArray, FloatArray, Prior]:
    """Posterior mean and sd of one bounded rate per session, and its group prior."""
    has = sxx > 0
    slope = np.where(has, sxy / np.where(has, sxx, 1.0), np.nan)
    se = np.where(has, sigma / np.sqrt(np.where(has, sxx, 1.0)), np.inf)
    prior = group_prior(slope, se, groups, n_groups)
    tau2 = prior.sd[groups] ** 2
    precision = np.where(has, 1.0 / se**2, 0.0) + 1.0 / tau2
    mean = (np.where(has, slope / se**2, 0.0) + prior.mean[groups] / tau2) / precision
    post_mean, post_sd = truncated_normal(mean, 1.0 / np.sqrt(precision))
    return post_mean, post_sd, prior


def _residual_sigma(rss: FloatArray, n: FloatArray, n_parameters: FloatArray) -> FloatArray:
    """Residual sd with the model's degrees of freedom, floored; NaN without residual df."""
    dof = n - n_parameters
    out = np.full(rss.shape, np.nan)
    np.divide(rss, dof, out=out, where=dof > 0)
    sigma: FloatArray = np.sqrt(np.maximum(out, SIGMA_FLOOR**2))
    return sigma


def hierarchical_fit(
    trials: pd.DataFrame, *, group_keys: tuple[str, ...] = ("arm", "timepoint")
) -> HierarchicalFit:
    """M0, M1 and M2 fitted with a group prior per combination of ``group_keys``.

    ``group_keys`` absent from the trials are ignored (all sessions then form one
    group). A session's group is its first row's. Deterministic and independent
    of the order of the rows within the groups' data.
    """
    # A canonical row order: the sums (and M2's k search on them) never depend
    # on the order the rows came in.
    try:
        trials = trials.sort_values(["session", "event"], kind="mergesort")
    except TypeError:  # mixed-type ids: order them by their text
        order = trials[["session", "event"]].astype(str).sort_values(["session", "event"])
        trials = trials.loc[order.index]
    data = _valid_trials(trials)
    index = data.index
    keys = [k for k in group_keys if k in trials.columns]
    if keys:
        first = trials.groupby("session", sort=False, dropna=False)[keys].first().reindex(index)
        labels = first.astype(str).where(first.notna(), "")
        codes_frame = labels.apply(tuple, axis=1) if len(keys) > 1 else labels[keys[0]]
        # Sorted group codes: the group numbering never depends on row order.
        uniques, group_codes = np.unique(np.asarray(codes_frame.astype(str)), return_inverse=True)
    else:
        labels = pd.DataFrame(index=index)
        uniques, group_codes = np.array(["all"]), np.zeros(len(index), dtype=np.intp)
    groups = np.asarray(group_codes, dtype=np.intp)
    n_groups = len(uniques)

    x, y, good = data.x, data.y, data.good
    bad = ~good
    n = data.total(np.ones_like(x))
    sxx, sxy = data.total(x * x), data.total(x * y)
    sxx_g, sxy_g = data.total(x * x, good), data.total(x * y, good)
    sxx_b, sxy_b = data.total(x * x, bad), data.total(x * y, bad)
    yy = data.total(y * y)

    def rss_of(slope: FloatArray, sxy_: FloatArray, sxx_: FloatArray) -> FloatArray:
        used = np.nan_to_num(slope)
        return -2.0 * used * sxy_ + used * used * sxx_

    slope0 = np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1.0), 0.0)
    sigma0 = _residual_sigma(yy + rss_of(slope0, sxy, sxx), n, np.ones_like(n))
    m0, m0_sd, prior0 = _shrink(sxy, sxx, sigma0, groups, n_groups)

    slope_g = np.where(sxx_g > 0, sxy_g / np.where(sxx_g > 0, sxx_g, 1.0), 0.0)
    slope_b = np.where(sxx_b > 0, sxy_b / np.where(sxx_b > 0, sxx_b, 1.0), 0.0)
    n_rates = (sxx_g > 0).astype(np.float64) + (sxx_b > 0).astype(np.float64)
    rss1 = yy + rss_of(slope_g, sxy_g, sxx_g) + rss_of(slope_b, sxy_b, sxx_b)
    sigma1 = _residual_sigma(rss1, n, n_rates)
    m1_good, m1_good_sd, prior_good = _shrink(sxy_g, sxx_g, sigma1, groups, n_groups)
    m1_bad, m1_bad_sd, prior_bad = _shrink(sxy_b, sxx_b, sigma1, groups, n_groups)

    # M2 given each session's ML k: z = x (1 + k |x| / 100) makes it M1 in z.
    k = np.asarray(fit_sessions(trials).reindex(index)["m2_k"], dtype=np.float64)
    z = x * (1.0 + np.nan_to_num(k)[data.codes] * np.abs(x) / 100.0)
    szz_g, szy_g = data.total(z * z, good), data.total(z * y, good)
    szz_b, szy_b = data.total(z * z, bad), data.total(z * y, bad)
    w_g = np.where(szz_g > 0, szy_g / np.where(szz_g > 0, szz_g, 1.0), 0.0)
    w_b = np.where(szz_b > 0, szy_b / np.where(szz_b > 0, szz_b, 1.0), 0.0)
    rss2 = yy + rss_of(w_g, szy_g, szz_g) + rss_of(w_b, szy_b, szz_b)
    sigma2 = _residual_sigma(rss2, n, n_rates + 1.0)
    m2_good, _sd_g, prior2_good = _shrink(szy_g, szz_g, sigma2, groups, n_groups)
    m2_bad, _sd_b, prior2_bad = _shrink(szy_b, szz_b, sigma2, groups, n_groups)

    fitted = n > 0
    sessions = pd.DataFrame(
        {
            "hb_m0_lr": np.where(fitted, m0, np.nan),
            "hb_m1_lr_good": np.where(fitted, m1_good, np.nan),
            "hb_m1_lr_bad": np.where(fitted, m1_bad, np.nan),
            "hb_m1_lr_good_sd": np.where(fitted, m1_good_sd, np.nan),
            "hb_m1_lr_bad_sd": np.where(fitted, m1_bad_sd, np.nan),
            "hb_m0_lr_sd": np.where(fitted, m0_sd, np.nan),
            "hb_m2_w_good": np.where(fitted, m2_good, np.nan),
            "hb_m2_w_bad": np.where(fitted, m2_bad, np.nan),
            "hb_m2_k": k,
        },
        index=index,
    )

    rows: list[dict[str, object]] = []
    group_labels = _group_labels(labels, keys, groups, n_groups)
    for model, parameter, prior in (
        ("M0", "lr", prior0),
        ("M1", "lr_good", prior_good),
        ("M1", "lr_bad", prior_bad),
        ("M2", "w_good", prior2_good),
        ("M2", "w_bad", prior2_bad),
    ):
        for g in range(n_groups):
            rows.append(
                {
                    **group_labels[g],
                    "model": model,
                    "parameter": parameter,
                    "n_sessions": int(prior.n[g]),
                    "mean": float(prior.mean[g]),
                    "se": float(prior.se[g]),
                    "sd": float(prior.sd[g]),
                }
            )
    table = pd.DataFrame(rows, columns=list(GROUP_COLUMNS))
    return HierarchicalFit(sessions=sessions, groups=table)


def _group_labels(
    labels: pd.DataFrame, keys: list[str], groups: IntArray, n_groups: int
) -> list[dict[str, object]]:
    """Each group code's arm and timepoint (None where not a grouping key)."""
    out: list[dict[str, object]] = [{"arm": None, "timepoint": None} for _ in range(n_groups)]
    if not keys:
        return out
    first = np.full(n_groups, -1)
    for position, g in enumerate(groups.tolist()):
        if first[g] < 0:
            first[g] = position
    for g in range(n_groups):
        if first[g] >= 0:
            row = labels.iloc[int(first[g])]
            for key in keys:
                out[g][key] = str(row[key]) if row[key] != "" else None
    return out


def normal_normal_shrinkage(
    estimate: npt.ArrayLike, se: npt.ArrayLike, groups: npt.ArrayLike
) -> FloatArray:
    """The simple baseline: ML estimates shrunk toward their group's EB Normal prior.

    No bound, no truncation, the clipped ML rate taken as the datum: what one
    would do by hand with a table of per-session estimates and their SEs.
    """
    b = np.asarray(estimate, dtype=np.float64)
    s = np.asarray(se, dtype=np.float64)
    _uniques, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    codes = np.asarray(codes, dtype=np.intp)
    prior = group_prior(b, s, codes, int(codes.max()) + 1)
    tau2 = prior.sd[codes] ** 2
    shrunk: FloatArray = (b / s**2 + prior.mean[codes] / tau2) / (1.0 / s**2 + 1.0 / tau2)
    return shrunk
