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

Score version 2 bounds M2's effective rate: 0 <= w_v (1 + k EE/100) <= LR_max
on every trial of that valence, with w_v in [0, LR_max] and k allowed to be
negative (the rate may also shrink with the error). In version 1 the effective
rate was unbounded and M2 "won" sessions whose rates were above 1 by
overshooting. For a fixed k the constraint is an interval for each w_v: with
e_max the valence's largest EE/100, w_v <= LR_max / (1 + k e_max) when k > 0,
and w_v = 0 when 1 + k e_max < 0; so w_v is still the clipped slope, now
clipped to that interval, and the profile RSS(k) is still exact. Its only
jumps are at k = -1/e_max of each valence (below it the valence's rate is
forced to 0), and those points are searched explicitly. k = 0 is M1 again.

Learning rates are bounded to [0, LR_max], LR_max = 1 unless a study asks
otherwise (Study.lr_max). The lower bound stays 0: M2's rate is w_v times a
factor >= 0, and a negative rate (moving away from the base rate on
average) is not a learning rate this model describes.

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
from scipy.optimize import NonlinearConstraint, minimize

from scoring.metrics import (
    LR_MAX_DEFAULT,
    MIN_TRIALS_FOR_MODELS,
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
LR_BOUNDS: Final = (0.0, LR_MAX_DEFAULT)
# 10 lets the rate grow elevenfold over a 100-point error, beyond anything a
# 3-77 % scale can show; -10 shrinks it as fast. A session's k is further bounded
# below by -1 / (its largest EE / 100): under that every rate is forced to 0 and
# the fit is M2's worst, so nothing is lost by not searching there.
K_BOUNDS: Final = (-10.0, 10.0)
# The profile RSS(k) changes slowly (k acts through EE/100 <= 1), so a grid of
# step <= 0.1 cannot step over a better basin; golden-section search then
# narrows the bracket around the grid's best point until it is 1e-10 wide.
K_GRID_POINTS: Final = 201
# 1 + k e_max this close below 0 is k = -1/e_max up to rounding, still feasible.
_FEASIBLE_SLACK: Final = 1e-12
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
    """Regression arrays for the non-excluded trials of derived or raw trials.

    x = BR - E1 and y = E2 - E1 whatever the event's polarity: the model moves
    E2 toward the base rate by LR_v, with the valence (polarity-aware) choosing
    which rate.
    """
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


def _clipped_slope(sxy: FloatArray, sxx: FloatArray, high: float | FloatArray) -> FloatArray:
    """Least-squares slope through the origin clipped to [0, high]; NaN if sxx == 0."""
    slope = np.full(np.broadcast(sxy, sxx).shape, np.nan)
    np.divide(sxy, sxx, out=slope, where=sxx > 0)
    clipped: FloatArray = np.clip(slope, 0.0, high)
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
    e_max: FloatArray  # largest EE/100 of the valence; 0 without trials

    @classmethod
    def of(cls, data: _ValidTrials, mask: BoolArray) -> _M2Stats:
        x, y = data.x, data.y
        e = np.abs(x) / 100.0
        e_max = np.zeros(data.n_sessions)
        np.maximum.at(e_max, data.codes[mask], e[mask])
        return cls(
            a0=data.total(x * x, mask),
            a1=data.total(x * x * e, mask),
            a2=data.total(x * x * e * e, mask),
            b0=data.total(x * y, mask),
            b1=data.total(x * y * e, mask),
            yy=data.total(y * y, mask),
            e_max=e_max,
        )

    def column(self) -> _M2Stats:
        """The same sums as (n, 1) columns, to broadcast against a grid of k."""
        return _M2Stats(*(getattr(self, f.name)[:, np.newaxis] for f in fields(self)))

    def weight_bound(self, k: FloatArray, lr_max: float) -> FloatArray:
        """Largest w keeping 0 <= w (1 + k e) <= lr_max on every trial, at each k."""
        top = 1.0 + k * self.e_max  # the factor at the largest error
        bound: FloatArray = np.where(top < -_FEASIBLE_SLACK, 0.0, lr_max / np.maximum(top, 1.0))
        return bound

    def weight_and_rss(self, k: FloatArray, lr_max: float) -> tuple[FloatArray, FloatArray]:
        """Best feasible w (NaN without trials) and the RSS it leaves, at each k."""
        szz = self.a0 + 2.0 * k * self.a1 + k * k * self.a2
        szy = self.b0 + k * self.b1
        w = _clipped_slope(szy, szz, self.weight_bound(k, lr_max))
        # Every factor 0 (k = -1/e with one error): any w fits alike; 0 is feasible.
        w = np.where(np.isnan(w) & (self.a0 > 0), 0.0, w)
        used = np.nan_to_num(w)
        return w, self.yy - 2.0 * used * szy + used * used * szz


def _m2_search(good: _M2Stats, bad: _M2Stats, lr_max: float) -> FloatArray:
    """k minimising M2's constrained RSS per session: a grid, then golden-section search."""
    low, high = K_BOUNDS
    e_max = np.maximum(good.e_max, bad.e_max)
    with np.errstate(divide="ignore"):
        floor = np.maximum(low, -1.0 / e_max)  # -inf without trials: low
    lows = floor[:, np.newaxis]
    # Clipped: lows + (high - lows) can round to just above high.
    grid = np.minimum(lows + (high - lows) * np.linspace(0.0, 1.0, K_GRID_POINTS), high)
    step = (high - floor) / (K_GRID_POINTS - 1)
    good_col, bad_col = good.column(), bad.column()

    def rss_at(k: FloatArray, g: _M2Stats = good, b: _M2Stats = bad) -> FloatArray:
        return g.weight_and_rss(k, lr_max)[1] + b.weight_and_rss(k, lr_max)[1]

    rss_grid = rss_at(grid, good_col, bad_col)
    best = np.argmin(rss_grid, axis=1)
    k_best = grid[np.arange(best.size), best]

    lo = np.maximum(k_best - step, floor)
    hi = np.minimum(k_best + step, high)
    for _ in range(GOLDEN_ITERATIONS):
        c = hi - _INVERSE_PHI * (hi - lo)
        d = lo + _INVERSE_PHI * (hi - lo)
        left = rss_at(c) < rss_at(d)
        hi = np.where(left, d, hi)
        lo = np.where(left, lo, c)
    # Golden section assumes one minimum in the bracket, and the profile jumps
    # where a valence's rate stops being forced to 0 (k = -1/e_max of that
    # valence): the grid's best point and those edges compete with it, so the
    # search is never worse than any of them.
    with np.errstate(divide="ignore"):
        edges = [np.clip(-1.0 / v.e_max, floor, high) for v in (good, bad)]
    candidates = np.column_stack([(lo + hi) / 2.0, k_best, *edges])
    rss_candidates = rss_at(candidates, good_col, bad_col)
    k = candidates[np.arange(k_best.size), np.argmin(rss_candidates, axis=1)]
    # Where k is not identified (both weights at 0, one EE per valence, a
    # noise-free M1 session) every k fits alike; report k = 0, the M1 nested
    # in M2, rather than wherever the search stopped. The tolerance is far
    # below what moves the log-likelihood by 1e-6.
    at_zero = rss_at(np.zeros_like(k))
    tolerance = 1e-12 * (good.yy + bad.yy)
    chosen: FloatArray = np.where(at_zero <= rss_at(k) + tolerance, 0.0, k)
    return chosen


def _best_model(bics: Sequence[FloatArray], n: FloatArray) -> npt.NDArray[np.object_]:
    """'M0' / 'M1' / 'M2' by lowest BIC (the simpler wins a tie).

    None without a fit and under MIN_TRIALS_FOR_MODELS valid trials, where a
    BIC difference does not tell the models apart.
    """
    stacked = np.column_stack([np.where(np.isnan(b), np.inf, b) for b in bics])
    winner = np.argmin(stacked, axis=1)
    names: npt.NDArray[np.object_] = np.array(MODELS, dtype=object)[winner]
    names[np.all(np.isinf(stacked), axis=1) | (n < MIN_TRIALS_FOR_MODELS)] = None
    return names


def _fit(data: _ValidTrials, lr_max: float) -> dict[str, object]:
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

    lr = _clipped_slope(data.total(x * y), data.total(x * x), lr_max)
    out["m0_lr"] = lr
    bic0 = summarise("M0", lr[codes] * x)

    lr_good = _clipped_slope(data.total(x * y, good), data.total(x * x, good), lr_max)
    lr_bad = _clipped_slope(data.total(x * y, bad), data.total(x * x, bad), lr_max)
    out["m1_lr_good"] = lr_good
    out["m1_lr_bad"] = lr_bad
    out["m1_scaling"] = (lr_good + lr_bad) / 2.0
    out["m1_asymmetry"] = lr_good - lr_bad
    bic1 = summarise("M1", np.where(good, lr_good[codes], lr_bad[codes]) * x)

    stats_good, stats_bad = _M2Stats.of(data, good), _M2Stats.of(data, bad)
    k = _m2_search(stats_good, stats_bad, lr_max)
    w_good = stats_good.weight_and_rss(k, lr_max)[0]
    w_bad = stats_bad.weight_and_rss(k, lr_max)[0]
    k = np.where(n > 0, k, np.nan)
    out["m2_w_good"] = w_good
    out["m2_w_bad"] = w_bad
    out["m2_k"] = k
    weight = np.where(good, w_good[codes], w_bad[codes])
    bic2 = summarise("M2", weight * (1.0 + k[codes] * np.abs(x) / 100.0) * x)

    out["best_model"] = _best_model([bic0, bic1, bic2], n)
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


def _check_lr_max(lr_max: float) -> None:
    if not (math.isfinite(lr_max) and lr_max > 0):
        raise ValueError(f"lr_max must be a positive number, not {lr_max!r}")


def fit_sessions(trials: pd.DataFrame, *, lr_max: float = LR_MAX_DEFAULT) -> pd.DataFrame:
    """M0, M1 and M2 fitted to every session at once; FIT_COLUMNS by session.

    Every learning rate, M2's effective rate on every trial included, lies in
    [0, lr_max].
    """
    _check_lr_max(lr_max)
    data = _valid_trials(trials)
    return _frame(_fit(data, lr_max), data.index)


def _negative_loglik(residual: FloatArray, log_sigma: float) -> float:
    """-log N(residual; 0, exp(log_sigma)^2), summed."""
    variance = math.exp(2.0 * log_sigma)
    n = residual.size
    return float(
        0.5 * n * (_LOG_2PI + 2.0 * log_sigma) + np.dot(residual, residual) / (2.0 * variance)
    )


def _naive_session(
    x: FloatArray, y: FloatArray, good: BoolArray, lr_max: float
) -> dict[str, object]:
    """One session's three fits with scipy.optimize.minimize, M2 under its literal constraint.

    M0 and M1 by L-BFGS-B within their bounds; M2 by SLSQP with two inequality
    constraints per trial, 0 <= w_v (1 + k EE/100) <= lr_max, from several starts.
    """
    n = x.size
    e = np.abs(x) / 100.0
    rate = (0.0, lr_max)
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

    def m2_rate(p: npt.NDArray[np.float64]) -> FloatArray:
        rates: FloatArray = np.where(good, p[0], p[1]) * (1.0 + p[2] * e)
        return rates

    def m2(p: npt.NDArray[np.float64]) -> float:
        return _negative_loglik(y - m2_rate(p) * x, float(p[3]))

    every_trial = NonlinearConstraint(m2_rate, 0.0, lr_max)
    # SLSQP steps far outside the data without an upper bound on sigma; answers
    # lie within 0-100, so sigma never needs more than 1000.
    m2_bounds: list[tuple[float | None, float | None]] = [
        rate,
        rate,
        K_BOUNDS,
        (math.log(SIGMA_FLOOR), math.log(1000.0)),
    ]
    best_p2, ll2 = np.array([0.0, 0.0, 0.0, start_sigma]), -math.inf
    # Feasible starts: k = 0 (M1), a shrinking and a growing rate.
    for k_start, w_start in ((0.0, 0.5), (-0.5, 0.5), (2.0, 0.25)):
        w0 = w_start * lr_max
        found = minimize(
            m2,
            np.array([w0, w0, k_start, start_sigma]),
            method="SLSQP",
            bounds=m2_bounds,
            constraints=every_trial,
            options={"maxiter": 500, "ftol": 1e-12},
        )
        rates = m2_rate(found.x)
        feasible = bool(np.all(rates >= -1e-9) and np.all(rates <= lr_max + 1e-9))
        if feasible and -float(found.fun) > ll2:
            best_p2, ll2 = np.asarray(found.x, dtype=np.float64), -float(found.fun)

    out: dict[str, object] = {}
    has_good, has_bad = bool(good.any()), bool((~good).any())

    def rate_or_nan(value: float, present: bool) -> float:
        return float(value) if present else math.nan

    p0, ll0 = fit(m0, [0.5 * lr_max, start_sigma], [rate, log_sigma])
    p1, ll1 = fit(m1, [0.5 * lr_max, 0.5 * lr_max, start_sigma], [rate, rate, log_sigma])
    p2 = best_p2
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


def fit_sessions_naive(trials: pd.DataFrame, *, lr_max: float = LR_MAX_DEFAULT) -> pd.DataFrame:
    """Reference fit: a Python loop over sessions, scipy.optimize per model (slow)."""
    _check_lr_max(lr_max)
    data = _valid_trials(trials)
    rows: list[dict[str, object]] = []
    order = np.argsort(data.codes, kind="stable")
    bounds = np.searchsorted(data.codes[order], np.arange(data.n_sessions + 1))
    for session in range(data.n_sessions):
        take = order[bounds[session] : bounds[session + 1]]
        if take.size == 0:
            rows.append({c: math.nan for c in FIT_COLUMNS} | {"best_model": None})
            continue
        row = _naive_session(data.x[take], data.y[take], data.good[take], lr_max)
        bics = [np.array([row[f"{m.lower()}_bic"]], dtype=np.float64) for m in MODELS]
        row["best_model"] = _best_model(bics, np.array([float(take.size)]))[0]
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

    The rates are used as given, above 1 or with a negative k included: that is
    how the benchmark checks what the bounded fits make of such data.

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
