"""Maximum-likelihood fits of the belief-updating models M0, M1 and M2.

The model (PROTOCOL.md, "Computational models"), on the valid trials only:

    E2 = E1 + LR_v * (BR - E1) + noise,   noise ~ Normal(0, sigma^2)

- M0: one learning rate for both valences (parameters LR, sigma);
- M1: LR_good and LR_bad (parameters LR_good, LR_bad, sigma), reported also as
  scaling S = (LR_good + LR_bad) / 2 and asymmetry A = LR_good - LR_bad;
- M2: LR_v = w_v * (1 + k * EE / 100) (parameters w_good, w_bad, k, sigma).

Write x = BR - E1 and y = E2 - E1: each model is a regression of y on x
through the origin with a slope per valence, so for a given sigma the best
rates minimise the residual sum of squares (RSS), whatever sigma is. That is
why the fits below are closed forms: the RSS is a convex quadratic in each
rate, so the unconstrained slope clipped to its bounds is the exact
constrained optimum; then sigma^2 = RSS / n, raised to SIGMA_FLOOR^2 when
smaller. M2 is linear in (w_good, w_bad) for a fixed k, so only k is
searched, on all sessions at once.

M2's parameterisation keeps a proper likelihood everywhere: w_v is bounded
to [0, 1] like the other rates and k to K_BOUNDS, and the effective rate
w_v (1 + k EE/100) is *not* clipped to [0, 1]. Clipping it would make the
likelihood flat in w and k wherever the clip binds (no unique maximum, no
gradient, and no longer linear in w), and a rate above 1 (an overshoot past
the base rate) is a behaviour the Gaussian model can describe. k >= 0 keeps
the rate growing with the error, as PROTOCOL.md defines M2, and makes M1 the
k = 0 case of M2.

Every fit is vectorised over sessions (sums over integer session codes);
fit_sessions_naive is the per-session scipy.optimize reference the benchmark
and the tests compare it with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.optimize import minimize

from scoring.metrics import (
    MODEL_COLUMNS,
    MODEL_EXTRA_COLUMNS,
    BoolArray,
    FloatArray,
    IntArray,
    ensure_derived,
    session_index,
    sum_by,
)

FIT_COLUMNS: Final = (*MODEL_COLUMNS, *MODEL_EXTRA_COLUMNS)
MODELS: Final = ("M0", "M1", "M2")
# Free parameters per model, sigma included, for AIC and BIC. M1 and M2 keep
# their count when a session lacks one valence: that rate then cannot change
# the fit, and the extra penalty makes the simpler model win the tie.
N_PARAMETERS: Final = {"M0": 2, "M1": 3, "M2": 4}

# Answers are integers, so even a perfect learner is off by rounding (sd
# 1/sqrt(12) ~ 0.29); a floor a little above that keeps a noise-free session
# from an infinite likelihood without favouring any model.
SIGMA_FLOOR: Final = 0.5
LR_BOUNDS: Final = (0.0, 1.0)
# k >= 0 is the protocol's "the learning rate can grow with the size of the
# error"; 10 lets it grow elevenfold over a 100-point error, beyond anything a
# 3-77 % scale can show.
K_BOUNDS: Final = (0.0, 10.0)
# The profile RSS(k) changes slowly (k acts through EE/100 <= 1), so a grid of
# this step (0.1) cannot step over a better basin; golden-section search then
# narrows the bracket around the grid's best point until it is 1e-10 wide.
K_GRID_POINTS: Final = 101
GOLDEN_ITERATIONS: Final = 60
_INVERSE_PHI: Final = (math.sqrt(5.0) - 1.0) / 2.0
_LOG_2PI: Final = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class _ValidTrials:
    """The valid trials of every session, in regression form."""

    index: pd.Index
    codes: IntArray
    x: FloatArray  # BR - E1
    y: FloatArray  # E2 - E1
    good: BoolArray

    @property
    def n_sessions(self) -> int:
        return len(self.index)

    def total(self, values: FloatArray, mask: BoolArray | None = None) -> FloatArray:
        if mask is None:
            return sum_by(self.codes, values, self.n_sessions)
        return sum_by(self.codes[mask], values[mask], self.n_sessions)


def _valid_trials(trials: pd.DataFrame) -> _ValidTrials:
    """Regression arrays for the non-excluded trials of derived or raw trials."""
    derived = ensure_derived(trials)
    codes, index = session_index(derived)
    valid = ~np.asarray(derived["excluded"], dtype=np.bool_)
    valence = np.asarray(derived["valence"], dtype=np.str_)
    e1 = np.asarray(pd.to_numeric(derived["e1"], errors="coerce"), dtype=np.float64)
    br = np.asarray(pd.to_numeric(derived["br"], errors="coerce"), dtype=np.float64)
    e2 = np.asarray(pd.to_numeric(derived["e2"], errors="coerce"), dtype=np.float64)
    return _ValidTrials(
        index=index,
        codes=codes[valid],
        x=(br - e1)[valid],
        y=(e2 - e1)[valid],
        good=(valence == "good")[valid],
    )


def _clipped_slope(sxy: FloatArray, sxx: FloatArray) -> FloatArray:
    """Least-squares slope through the origin clipped to [low, 1]; NaN if sxx == 0."""
    slope = np.full(sxy.shape, np.nan)
    np.divide(sxy, sxx, out=slope, where=sxx > 0)
    clipped: FloatArray = np.clip(slope, *LR_BOUNDS)
    return clipped


def _likelihood(rss: FloatArray, n: FloatArray) -> tuple[FloatArray, FloatArray]:
    """MLE sigma (floored) and the Gaussian log-likelihood; NaN where n == 0."""
    has = n > 0
    variance = np.full(rss.shape, np.nan)
    np.divide(rss, n, out=variance, where=has)
    variance = np.maximum(variance, SIGMA_FLOOR**2)
    loglik = -0.5 * n * (_LOG_2PI + np.log(variance)) - rss / (2.0 * variance)
    return np.sqrt(variance), np.where(has, loglik, np.nan)


def _criteria(
    loglik: FloatArray, n: FloatArray, n_parameters: int
) -> tuple[FloatArray, FloatArray]:
    """AIC and BIC; NaN where there is no trial."""
    aic = 2.0 * n_parameters - 2.0 * loglik
    with np.errstate(divide="ignore"):
        bic = n_parameters * np.log(n) - 2.0 * loglik
    return aic, np.where(n > 0, bic, np.nan)


@dataclass(frozen=True)
class _M2Stats:
    """Sums that make M2's profile RSS a cheap function of k.

    With e = EE/100 and z = x (1 + k e): sum z^2 = a0 + 2k a1 + k^2 a2 and
    sum z y = b0 + k b1, so evaluating any k for every session costs a few
    array operations instead of a pass over the trials.
    """

    a0: FloatArray
    a1: FloatArray
    a2: FloatArray
    b0: FloatArray
    b1: FloatArray
    yy: FloatArray

    @classmethod
    def of(cls, data: _ValidTrials, mask: BoolArray) -> _M2Stats:
        x, y = data.x, data.y
        e = np.abs(x) / 100.0
        return cls(
            a0=data.total(x * x, mask),
            a1=data.total(x * x * e, mask),
            a2=data.total(x * x * e * e, mask),
            b0=data.total(x * y, mask),
            b1=data.total(x * y * e, mask),
            yy=data.total(y * y, mask),
        )

    def column(self) -> _M2Stats:
        """The same sums as (n, 1) columns, to broadcast against a grid of k."""
        return _M2Stats(*(getattr(self, f.name)[:, np.newaxis] for f in fields(self)))

    def weight_and_rss(self, k: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Best w (NaN without trials) and the RSS it leaves, at each k."""
        szz = self.a0 + 2.0 * k * self.a1 + k * k * self.a2
        szy = self.b0 + k * self.b1
        w = _clipped_slope(szy, szz)
        used = np.nan_to_num(w)
        return w, self.yy - 2.0 * used * szy + used * used * szz


def _m2_search(good: _M2Stats, bad: _M2Stats) -> FloatArray:
    """k minimising M2's RSS per session: a grid, then golden-section search."""
    low, high = K_BOUNDS
    grid = np.linspace(low, high, K_GRID_POINTS)
    step = (high - low) / (K_GRID_POINTS - 1)
    good_col, bad_col = good.column(), bad.column()
    k_grid = np.broadcast_to(grid, (good.a0.shape[0], grid.size))
    rss_grid = good_col.weight_and_rss(k_grid)[1] + bad_col.weight_and_rss(k_grid)[1]
    best = np.argmin(rss_grid, axis=1)
    k_best = grid[best]
    rss_best = rss_grid[np.arange(best.size), best]

    def rss(k: FloatArray) -> FloatArray:
        return good.weight_and_rss(k)[1] + bad.weight_and_rss(k)[1]

    lo = np.maximum(k_best - step, low)
    hi = np.minimum(k_best + step, high)
    for _ in range(GOLDEN_ITERATIONS):
        c = hi - _INVERSE_PHI * (hi - lo)
        d = lo + _INVERSE_PHI * (hi - lo)
        left = rss(c) < rss(d)
        hi = np.where(left, d, hi)
        lo = np.where(left, lo, c)
    k_refined = (lo + hi) / 2.0
    # Golden section assumes one minimum in the bracket; keeping the grid
    # point when it is at least as good makes the search never worse than it.
    k = np.where(rss(k_refined) < rss_best, k_refined, k_best)
    # Where k is not identified (both weights at 0, one EE per valence, a
    # noise-free M1 session) every k fits alike; report k = 0, the M1 nested
    # in M2, rather than wherever the search stopped. The tolerance is far
    # below what moves the log-likelihood by 1e-6.
    at_zero = rss(np.zeros_like(k))
    tolerance = 1e-12 * (good.yy + bad.yy)
    chosen: FloatArray = np.where(at_zero <= rss(k) + tolerance, low, k)
    return chosen


def _best_model(bics: Sequence[FloatArray]) -> npt.NDArray[np.object_]:
    """'M0' / 'M1' / 'M2' by lowest BIC (the simpler wins a tie); None if no fit."""
    stacked = np.column_stack([np.where(np.isnan(b), np.inf, b) for b in bics])
    winner = np.argmin(stacked, axis=1)
    names: npt.NDArray[np.object_] = np.array(MODELS, dtype=object)[winner]
    names[np.all(np.isinf(stacked), axis=1)] = None
    return names


def _fit(data: _ValidTrials) -> dict[str, object]:
    """Every fit column for every session, as arrays."""
    x, y, good = data.x, data.y, data.good
    bad = ~good
    codes = data.codes
    n = data.total(np.ones_like(x))
    out: dict[str, object] = {}

    def summarise(name: str, predicted: FloatArray) -> FloatArray:
        # The RSS is summed from the residuals themselves, not from expanded
        # sums of squares, so that a near-perfect fit keeps its precision.
        residual = y - predicted
        sigma, loglik = _likelihood(data.total(residual * residual), n)
        aic, bic = _criteria(loglik, n, N_PARAMETERS[name])
        prefix = name.lower()
        out[f"{prefix}_sigma"] = sigma
        out[f"{prefix}_loglik"] = loglik
        out[f"{prefix}_aic"] = aic
        out[f"{prefix}_bic"] = bic
        return bic

    lr = _clipped_slope(data.total(x * y), data.total(x * x))
    out["m0_lr"] = lr
    bic0 = summarise("M0", lr[codes] * x)

    lr_good = _clipped_slope(data.total(x * y, good), data.total(x * x, good))
    lr_bad = _clipped_slope(data.total(x * y, bad), data.total(x * x, bad))
    out["m1_lr_good"] = lr_good
    out["m1_lr_bad"] = lr_bad
    out["m1_scaling"] = (lr_good + lr_bad) / 2.0
    out["m1_asymmetry"] = lr_good - lr_bad
    bic1 = summarise("M1", np.where(good, lr_good[codes], lr_bad[codes]) * x)

    stats_good, stats_bad = _M2Stats.of(data, good), _M2Stats.of(data, bad)
    k = _m2_search(stats_good, stats_bad)
    w_good = stats_good.weight_and_rss(k)[0]
    w_bad = stats_bad.weight_and_rss(k)[0]
    k = np.where(n > 0, k, np.nan)
    out["m2_w_good"] = w_good
    out["m2_w_bad"] = w_bad
    out["m2_k"] = k
    weight = np.where(good, w_good[codes], w_bad[codes])
    bic2 = summarise("M2", weight * (1.0 + k[codes] * np.abs(x) / 100.0) * x)

    out["best_model"] = _best_model([bic0, bic1, bic2])
    return out


def _frame(columns: Mapping[str, object], index: pd.Index) -> pd.DataFrame:
    """FIT_COLUMNS in order, best_model kept as Python str / None."""
    frame = pd.DataFrame({c: columns[c] for c in FIT_COLUMNS if c != "best_model"}, index=index)
    frame.insert(
        FIT_COLUMNS.index("best_model"),
        "best_model",
        pd.Series(columns["best_model"], index=index, dtype=object),
    )
    return frame


def fit_sessions(trials: pd.DataFrame) -> pd.DataFrame:
    """M0, M1 and M2 fitted to every session at once; FIT_COLUMNS by session."""
    data = _valid_trials(trials)
    return _frame(_fit(data), data.index)


def _negative_loglik(residual: FloatArray, log_sigma: float) -> float:
    """-log N(residual; 0, exp(log_sigma)^2), summed."""
    variance = math.exp(2.0 * log_sigma)
    n = residual.size
    return float(
        0.5 * n * (_LOG_2PI + 2.0 * log_sigma) + np.dot(residual, residual) / (2.0 * variance)
    )


def _naive_session(x: FloatArray, y: FloatArray, good: BoolArray) -> dict[str, object]:
    """One session's three fits, one scipy.optimize.minimize call per model."""
    n = x.size
    e = np.abs(x) / 100.0
    rate = LR_BOUNDS
    log_sigma = (math.log(SIGMA_FLOOR), None)
    start_sigma = math.log(max(float(np.std(y)), SIGMA_FLOOR * 1.01))

    def fit(
        objective: Callable[[npt.NDArray[np.float64]], float],
        start: list[float],
        bounds: list[tuple[float | None, float | None]],
    ) -> tuple[npt.NDArray[np.float64], float]:
        found = minimize(objective, np.array(start), method="L-BFGS-B", bounds=bounds)
        return np.asarray(found.x, dtype=np.float64), -float(found.fun)

    def m0(p: npt.NDArray[np.float64]) -> float:
        return _negative_loglik(y - p[0] * x, float(p[1]))

    def m1(p: npt.NDArray[np.float64]) -> float:
        return _negative_loglik(y - np.where(good, p[0], p[1]) * x, float(p[2]))

    def m2(p: npt.NDArray[np.float64]) -> float:
        slope = np.where(good, p[0], p[1]) * (1.0 + p[2] * e)
        return _negative_loglik(y - slope * x, float(p[3]))

    out: dict[str, object] = {}
    has_good, has_bad = bool(good.any()), bool((~good).any())

    def rate_or_nan(value: float, present: bool) -> float:
        return float(value) if present else math.nan

    p0, ll0 = fit(m0, [0.5, start_sigma], [rate, log_sigma])
    p1, ll1 = fit(m1, [0.5, 0.5, start_sigma], [rate, rate, log_sigma])
    p2, ll2 = fit(m2, [0.5, 0.5, 1.0, start_sigma], [rate, rate, K_BOUNDS, log_sigma])
    out["m0_lr"] = float(p0[0])
    g1, b1 = rate_or_nan(p1[0], has_good), rate_or_nan(p1[1], has_bad)
    out["m1_lr_good"], out["m1_lr_bad"] = g1, b1
    out["m1_scaling"], out["m1_asymmetry"] = (g1 + b1) / 2.0, g1 - b1
    out["m2_w_good"] = rate_or_nan(p2[0], has_good)
    out["m2_w_bad"] = rate_or_nan(p2[1], has_bad)
    out["m2_k"] = float(p2[2])
    for name, params, loglik in (("M0", p0, ll0), ("M1", p1, ll1), ("M2", p2, ll2)):
        prefix = name.lower()
        k = N_PARAMETERS[name]
        out[f"{prefix}_sigma"] = math.exp(float(params[-1]))
        out[f"{prefix}_loglik"] = loglik
        out[f"{prefix}_aic"] = 2.0 * k - 2.0 * loglik
        out[f"{prefix}_bic"] = k * math.log(n) - 2.0 * loglik
    return out


def fit_sessions_naive(trials: pd.DataFrame) -> pd.DataFrame:
    """Reference fit: a Python loop over sessions, L-BFGS-B per model (slow)."""
    data = _valid_trials(trials)
    rows: list[dict[str, object]] = []
    order = np.argsort(data.codes, kind="stable")
    bounds = np.searchsorted(data.codes[order], np.arange(data.n_sessions + 1))
    for session in range(data.n_sessions):
        take = order[bounds[session] : bounds[session + 1]]
        if take.size == 0:
            rows.append({c: math.nan for c in FIT_COLUMNS} | {"best_model": None})
            continue
        row = _naive_session(data.x[take], data.y[take], data.good[take])
        bics = [np.array([row[f"{m.lower()}_bic"]], dtype=np.float64) for m in MODELS]
        row["best_model"] = _best_model(bics)[0]
        rows.append(row)
    columns = {c: [row[c] for row in rows] for c in FIT_COLUMNS}
    return _frame(columns, data.index)


def simulate_sessions(
    n_sessions: int,
    n_trials: int = 40,
    *,
    lr_good: npt.ArrayLike,
    lr_bad: npt.ArrayLike,
    k: npt.ArrayLike = 0.0,
    sigma: float = 4.0,
    rng: np.random.Generator | int | None = None,
    scale: tuple[int, int] = (3, 77),
    br_range: tuple[int, int] = (10, 70),
) -> pd.DataFrame:
    """Trials simulated from M1 (M2 when k != 0), one row per session x event.

    lr_good, lr_bad and k are scalars or one value per session. Each event's
    base rate is drawn once (uniform integer in br_range) and shared by every
    session; E1 is a uniform integer on the scale; E2 = round(E1 + LR * (BR -
    E1) + noise), clipped to the scale as the task's input would refuse
    anything outside it. The clipping censors the noise of estimates near the
    scale's ends, which the Gaussian model ignores: a small, known mismatch.
    """
    generator = np.random.default_rng(rng)
    low, high = scale
    shape = (n_sessions, 1)
    good_rate = np.broadcast_to(np.asarray(lr_good, dtype=np.float64), n_sessions)
    bad_rate = np.broadcast_to(np.asarray(lr_bad, dtype=np.float64), n_sessions)
    growth = np.broadcast_to(np.asarray(k, dtype=np.float64), n_sessions)

    base_rate = generator.integers(br_range[0], br_range[1] + 1, size=n_trials)
    br = np.broadcast_to(base_rate, (n_sessions, n_trials))
    e1 = generator.integers(low, high + 1, size=(n_sessions, n_trials))
    error = br - e1
    rate = np.where(error < 0, good_rate.reshape(shape), bad_rate.reshape(shape))
    rate = rate * (1.0 + growth.reshape(shape) * np.abs(error) / 100.0)
    noise = generator.normal(0.0, sigma, size=(n_sessions, n_trials))
    e2 = np.clip(np.rint(e1 + rate * error + noise), low, high).astype(np.int64)

    return pd.DataFrame(
        {
            "session": np.repeat(np.arange(n_sessions), n_trials),
            "event": np.tile(np.arange(1, n_trials + 1), n_sessions),
            "e1": e1.ravel(),
            "br": br.ravel(),
            "e2": e2.ravel(),
        }
    )


def simulate_sessions_m0(
    n_sessions: int,
    n_trials: int = 40,
    *,
    lr: npt.ArrayLike,
    sigma: float = 4.0,
    rng: np.random.Generator | int | None = None,
    scale: tuple[int, int] = (3, 77),
    br_range: tuple[int, int] = (10, 70),
) -> pd.DataFrame:
    """Trials simulated from M0: one learning rate for both valences."""
    return simulate_sessions(
        n_sessions,
        n_trials,
        lr_good=lr,
        lr_bad=lr,
        sigma=sigma,
        rng=rng,
        scale=scale,
        br_range=br_range,
    )
