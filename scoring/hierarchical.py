"""Hierarchical (empirical-Bayes) fits of M0, M1 and M2 with a group prior per arm x timepoint.

PROTOCOL.md, "Group level, version 2": with 40 trials and answer noise sd 8 the
per-session maximum-likelihood rates are noisy; fitting the sessions of a group
together, each session's parameters drawn from its group's distribution, pulls
the noisy ones toward the group and makes every estimate better on average.

The model, per model M0, M1, M2 and per group g (arm x timepoint). Every
parameter of the model has a group prior, and the priors are independent:

- each learning rate (M0's lr, M1's lr_good and lr_bad, M2's w_good and
  w_bad) ~ Normal(mu, tau^2) truncated to [0, lr_max], the study's bound, as in
  the per-session fit (scoring.fitting);
- M2's k ~ Normal(mu, tau^2) truncated to scoring.fitting.K_BOUNDS, and M2's
  data are possible only where 0 <= w_v (1 + k EE/100) <= lr_max on every
  trial of the valence (score version 2's bound, as in the per-session fit);
- log sigma ~ Normal(mu, tau^2) truncated below at log SIGMA_FLOOR;
- the data: E2 - E1 = LR_v (BR - E1) + Normal(0, sigma^2) on the valid trials.

The group priors (mu, tau per parameter and group) are estimated by type-II
maximum likelihood: the marginal likelihood of the data, every session's
parameters integrated out, is maximised by L-BFGS-B with the gradient of
Fisher's identity (the posterior mean of the prior's score, as EM's M-step
uses), run again from its result until a run no longer raises it by
EM_TOLERANCE. The per-session posteriors are then reported by their mean and
sd. Integration is exact up to quadrature, not a Laplace approximation: given
sigma (and k), each model is linear in its rates, so the rates' posterior is a
product of truncated Normals integrated in closed form; log sigma (and M2's k)
are integrated by Gauss-Hermite quadrature on a Normal proposal per session
(the product of the group prior's Normal and a Normal approximation of the
session's likelihood), importance-weighted by the exact integrand. A group's
spread tau is kept above a floor (MIN_TAU) so that a group whose sessions
agree perfectly does not collapse its prior to a point.

Group means: the mean of the group's population distribution (the truncated
prior's mean; for sigma, the mean of sigma), with a standard error from the
curvature of the group's marginal log-likelihood in all of the model's
(mu, log tau) (observed information from the gradient's central differences,
delta method); a spread at its floor is held fixed.

Everything is vectorised over sessions and groups. Deterministic, and
independent of the order of the rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import optimize, special

from scoring.fitting import K_BOUNDS, SIGMA_FLOOR, _M2Stats, _valid_trials, fit_sessions
from scoring.metrics import LR_MAX_DEFAULT, FloatArray, IntArray

# DESIGN.md, "Export columns": the score columns the hierarchical fit fills.
HB_COLUMNS: Final = (
    "hb_m0_lr",
    "hb_m1_lr_good",
    "hb_m1_lr_bad",
    "hb_m1_lr_good_sd",
    "hb_m1_lr_bad_sd",
)
# The rest of what it computes per session, kept out of the export's contract
# (stored with the score, and in the notebook's frame).
HB_EXTRA_COLUMNS: Final = (
    "hb_m0_lr_sd",
    "hb_m2_w_good",
    "hb_m2_w_bad",
    "hb_m2_k",
    "hb_m2_w_good_sd",
    "hb_m2_w_bad_sd",
    "hb_m2_k_sd",
    "hb_m0_sigma",
    "hb_m1_sigma",
    "hb_m2_sigma",
)
GROUP_COLUMNS: Final = (
    "arm",
    "timepoint",
    "model",
    "parameter",
    "n_sessions",
    "mean",
    "se",
    "sd",
    "ci_low",
    "ci_high",
)
# Iterations of one L-BFGS-B run, and runs (each re-centring the quadrature nodes).
EM_ITERATIONS: Final = 300
ROUNDS: Final = 8
# The fit stops when a run raises the marginal log-likelihood by less than this.
EM_TOLERANCE: Final = 1e-2
# Floors of the groups' spreads tau, in each parameter's own unit (log sigma for sigma).
MIN_TAU: Final = {"rate": 0.005, "k": 0.05, "log_sigma": 0.01}
# Quadrature nodes in log sigma (M2: per node of k) and in k.
SIGMA_NODES: Final = 7
SIGMA_NODES_M2: Final = 3
K_NODES: Final = 7
# Proposals are widened by this factor: importance weights are then bounded.
PROPOSAL_WIDTH: Final = 1.5
# A 95 % interval of a group mean: mean -+ this many standard errors.
Z_95: Final = 1.959963984540054
_LOG_2PI: Final = math.log(2.0 * math.pi)
_LOG_FLOOR: Final = math.log(SIGMA_FLOOR)


# ------------------------------------------------------------------ truncated Normals


def _log_mass(low: FloatArray, high: FloatArray, mean: FloatArray, sd: FloatArray) -> FloatArray:
    """log P(low <= X <= high), X ~ Normal(mean, sd^2), stable in both tails."""
    a = (low - mean) / sd
    b = (high - mean) / sd
    upper = a > 0  # the interval lies above the mean: use upper tails
    lo_ = np.where(upper, -b, a)
    hi_ = np.where(upper, -a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        big = special.log_ndtr(hi_)
        small = special.log_ndtr(lo_)
        out: FloatArray = big + np.log1p(-np.exp(small - big))
    return out


def _tn_moments(
    low: FloatArray,
    high: FloatArray,
    mean: FloatArray,
    sd: FloatArray,
    log_z: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Mean and variance of Normal(mean, sd^2) truncated to [low, high] (high may be inf).

    ``log_z``, the interval's log mass, when the caller has it.
    """
    if log_z is None:
        log_z = _log_mass(low, high, mean, sd)
    a = (low - mean) / sd
    b = (high - mean) / sd
    with np.errstate(over="ignore", invalid="ignore"):
        phi_a = np.where(np.isfinite(a), np.exp(-0.5 * a * a - 0.5 * _LOG_2PI - log_z), 0.0)
        phi_b = np.where(np.isfinite(b), np.exp(-0.5 * b * b - 0.5 * _LOG_2PI - log_z), 0.0)
        shift = phi_a - phi_b
        spread = np.where(np.isfinite(a), a * phi_a, 0.0) - np.where(np.isfinite(b), b * phi_b, 0.0)
    width = high - low
    variance = sd * sd * np.clip(1.0 + spread - shift * shift, 0.0, None)
    variance = np.minimum(variance, np.where(np.isfinite(width), width * width / 4.0, np.inf))
    out_mean: FloatArray = np.clip(mean + sd * shift, low, high)
    return out_mean, variance


def truncated_normal(
    mean: FloatArray, sd: FloatArray, low: float = 0.0, high: float = 1.0
) -> tuple[FloatArray, FloatArray]:
    """Mean and sd of Normal(mean, sd^2) truncated to [low, high], stable in the tails."""
    lo = np.full(np.shape(mean), low)
    hi = np.full(np.shape(mean), high)
    m, v = _tn_moments(lo, hi, np.asarray(mean, dtype=np.float64), np.asarray(sd, np.float64))
    return m, np.sqrt(v)


def _normal_log_pdf(x: FloatArray, mean: FloatArray, variance: FloatArray) -> FloatArray:
    out: FloatArray = -0.5 * (_LOG_2PI + np.log(variance) + (x - mean) ** 2 / variance)
    return out


# ------------------------------------------------------------------ the parameters


@dataclass(frozen=True)
class _Parameter:
    """One parameter of a model: its name, kind (floor of tau) and prior support."""

    name: str
    kind: str  # "rate", "k" or "log_sigma"
    low: float
    high: float


@dataclass
class _Hyper:
    """Group prior per group code: arrays of mu and tau."""

    mu: FloatArray
    tau: FloatArray

    def copy(self) -> _Hyper:
        return _Hyper(self.mu.copy(), self.tau.copy())


@dataclass(frozen=True)
class _Posterior:
    """A model's E-step: per session log evidence and each parameter's moments."""

    log_evidence: FloatArray
    first: dict[str, FloatArray]  # E[theta]
    second: dict[str, FloatArray]  # E[theta^2]
    sigma_mean: FloatArray  # E[sigma]
    sigma_second: FloatArray  # E[sigma^2]


def _rate_factor(
    sxx: FloatArray,
    sxy: FloatArray,
    variance: FloatArray,
    mu: FloatArray,
    tau: FloatArray,
    lr_max: float,
    upper: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The rate integrated out: log of int_0^upper exp(-(sxx r^2 - 2 sxy r) / 2 sigma^2) p(r) dr.

    p is the group's Normal(mu, tau^2) truncated to [0, lr_max]; also the
    conditional posterior's first two moments. All arrays broadcast.
    """
    zero = np.zeros(np.broadcast(sxx, variance, mu, upper).shape)
    # The prior's mass depends on the group only: computed at its own shape.
    log_prior_mass = _log_mass(np.zeros_like(mu), np.zeros_like(mu) + lr_max, mu, tau + 0.0 * mu)
    has = sxx > 0
    safe_sxx = np.where(has, sxx, 1.0)
    s2 = variance / safe_sxx
    b = sxy / safe_sxx
    tau2 = tau * tau
    post_var = np.where(has, 1.0 / (1.0 / s2 + 1.0 / tau2), tau2)
    post_mean = np.where(has, post_var * (b / s2 + mu / tau2), mu + zero)
    post_sd = np.sqrt(post_var)
    log_mass = _log_mass(zero, upper + zero, post_mean, post_sd)
    data_part = np.where(
        has,
        sxy * b / (2.0 * variance)
        + 0.5 * (_LOG_2PI + np.log(s2))
        + _normal_log_pdf(b, mu, s2 + tau2),
        0.0,
    )
    feasible = upper > 0
    log_f = np.where(feasible, data_part + log_mass - log_prior_mass, -np.inf)
    mean, var = _tn_moments(zero, upper + zero, post_mean, post_sd, log_mass)
    mean = np.where(feasible, mean, 0.0)
    var = np.where(feasible, var, 0.0)
    return log_f, mean, var + mean * mean


def _gauss_hermite(n: int) -> tuple[FloatArray, FloatArray]:
    """Nodes and weights for E[f(Z)], Z ~ Normal(0, 1)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(n)
    return np.asarray(nodes, dtype=np.float64), np.asarray(weights / weights.sum(), np.float64)


def _proposal(
    center: FloatArray, precision: FloatArray, mu: FloatArray, tau: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Mean and sd of the widened product of Normal(center, 1/precision) and Normal(mu, tau^2)."""
    total = precision + 1.0 / (tau * tau)
    mean = (precision * center + mu / (tau * tau)) / total
    return mean, PROPOSAL_WIDTH / np.sqrt(total)


@dataclass(frozen=True)
class _Nodes:
    """Quadrature nodes per session and their log proposal weights (log w - log q)."""

    log_sigma: FloatArray  # (S, Q_sigma)
    log_sigma_weight: FloatArray
    k: FloatArray | None = None  # (S, Q_k)
    k_weight: FloatArray | None = None


@dataclass(frozen=True)
class _Sums:
    """The per-session sums every model needs."""

    n: FloatArray
    yy: FloatArray
    sxx: FloatArray
    sxy: FloatArray
    good: _M2Stats
    bad: _M2Stats
    floor_k: FloatArray  # lowest feasible k of M2
    centers: dict[str, FloatArray]  # per model: log sigma of the ML fit
    k_center: FloatArray
    k_precision: FloatArray


def _nodes_of(
    center: FloatArray, precision: FloatArray, mu: FloatArray, tau: FloatArray, count: int
) -> tuple[FloatArray, FloatArray]:
    mean, sd = _proposal(center, precision, mu, tau)
    z, w = _gauss_hermite(count)
    nodes = mean[:, None] + sd[:, None] * z[None, :]
    # log w - log q(node): the importance weight's denominator, q = Normal(mean, sd^2).
    log_q = _normal_log_pdf(nodes, mean[:, None], (sd * sd)[:, None])
    return nodes, np.log(w)[None, :] - log_q


class _Model:
    """One model's parameters and its E-step (log evidence and moments per session)."""

    def __init__(self, name: str, sums: _Sums, lr_max: float) -> None:
        self.name = name
        self.sums = sums
        self.lr_max = lr_max
        rates = {"M0": ("lr",), "M1": ("lr_good", "lr_bad"), "M2": ("w_good", "w_bad")}[name]
        params = [_Parameter(r, "rate", 0.0, lr_max) for r in rates]
        if name == "M2":
            params.append(_Parameter("k", "k", *K_BOUNDS))
        params.append(_Parameter("sigma", "log_sigma", _LOG_FLOOR, math.inf))
        self.parameters = tuple(params)

    def informed(self, parameter: str) -> npt.NDArray[np.bool_]:
        """Sessions whose data say something about the parameter (the M-step's sessions)."""
        s = self.sums
        if parameter in ("lr_good", "w_good"):
            return np.asarray(s.good.a0 > 0)
        if parameter in ("lr_bad", "w_bad"):
            return np.asarray(s.bad.a0 > 0)
        if parameter == "k":
            return np.asarray((s.good.a0 > 0) | (s.bad.a0 > 0))
        return np.asarray(s.n > 0)

    def nodes(self, hyper: dict[str, _Hyper], groups: IntArray) -> _Nodes:
        s = self.sums
        h = hyper["sigma"]
        n_eff = np.maximum(s.n - (len(self.parameters) - 1), 1.0)
        count = SIGMA_NODES_M2 if self.name == "M2" else SIGMA_NODES
        log_sigma, lw = _nodes_of(
            s.centers[self.name], 2.0 * n_eff, h.mu[groups], h.tau[groups], count
        )
        if self.name != "M2":
            return _Nodes(log_sigma, lw)
        hk = hyper["k"]
        k, kw = _nodes_of(s.k_center, s.k_precision, hk.mu[groups], hk.tau[groups], K_NODES)
        return _Nodes(log_sigma, lw, k, kw)

    def posterior(self, hyper: dict[str, _Hyper], groups: IntArray, nodes: _Nodes) -> _Posterior:
        s = self.sums
        theta = nodes.log_sigma  # (S, Qs)
        hs = hyper["sigma"]
        mu_s, tau_s = hs.mu[groups][:, None], hs.tau[groups][:, None]
        log_prior_sigma = _normal_log_pdf(theta, mu_s, tau_s * tau_s) - _log_mass(
            np.full_like(mu_s, _LOG_FLOOR), np.full_like(mu_s, np.inf), mu_s, tau_s
        )
        log_prior_sigma = np.where(theta >= _LOG_FLOOR, log_prior_sigma, -np.inf)
        variance = np.exp(2.0 * theta)
        base = (
            nodes.log_sigma_weight
            + log_prior_sigma
            - 0.5 * s.n[:, None] * _LOG_2PI
            - s.n[:, None] * theta
        )
        rates = [p.name for p in self.parameters if p.kind == "rate"]
        if self.name == "M2":
            return self._posterior_m2(hyper, groups, nodes, base, variance, rates)
        if self.name == "M0":
            stats = [(s.sxx, s.sxy)]
        else:
            stats = [(s.good.a0, s.good.b0), (s.bad.a0, s.bad.b0)]
        log_joint = base - s.yy[:, None] / (2.0 * variance)
        moments: list[tuple[FloatArray, FloatArray]] = []
        for name, (sxx, sxy) in zip(rates, stats, strict=True):
            h = hyper[name]
            log_f, m1, m2 = _rate_factor(
                sxx[:, None],
                sxy[:, None],
                variance,
                h.mu[groups][:, None],
                h.tau[groups][:, None],
                self.lr_max,
                np.full((1, 1), self.lr_max),
            )
            log_joint = log_joint + log_f
            moments.append((m1, m2))
        return self._collect(log_joint, theta, dict(zip(rates, moments, strict=True)), {})

    def _posterior_m2(
        self,
        hyper: dict[str, _Hyper],
        groups: IntArray,
        nodes: _Nodes,
        base: FloatArray,
        variance: FloatArray,
        rates: list[str],
    ) -> _Posterior:
        s = self.sums
        assert nodes.k is not None and nodes.k_weight is not None
        k = nodes.k  # (S, Qk)
        hk = hyper["k"]
        mu_k, tau_k = hk.mu[groups][:, None], hk.tau[groups][:, None]
        low, high = K_BOUNDS
        inside = (k >= np.maximum(s.floor_k[:, None], low)) & (k <= high)
        log_prior_k = _normal_log_pdf(k, mu_k, tau_k * tau_k) - _log_mass(
            np.full_like(mu_k, low), np.full_like(mu_k, high), mu_k, tau_k
        )
        log_k = np.where(inside, nodes.k_weight + log_prior_k, -np.inf)[:, :, None]  # (S,Qk,1)
        log_joint = log_k + (base - s.yy[:, None] / (2.0 * variance))[:, None, :]
        var3 = variance[:, None, :]
        moments: dict[str, tuple[FloatArray, FloatArray]] = {}
        for name, stats in zip(rates, (s.good, s.bad), strict=True):
            kk = k[:, :, None]
            col = stats.column()
            szz = col.a0[:, :, None] + 2.0 * kk * col.a1[:, :, None] + kk * kk * col.a2[:, :, None]
            szy = col.b0[:, :, None] + kk * col.b1[:, :, None]
            top = 1.0 + kk * col.e_max[:, :, None]
            upper = np.where(top < 0, 0.0, self.lr_max / np.maximum(top, 1.0))
            upper = np.where(col.a0[:, :, None] > 0, upper, self.lr_max)
            h = hyper[name]
            log_f, m1, m2 = _rate_factor(
                szz,
                szy,
                var3,
                h.mu[groups][:, None, None],
                h.tau[groups][:, None, None],
                self.lr_max,
                upper,
            )
            log_joint = log_joint + log_f
            moments[name] = (m1, m2)
        shape = log_joint.shape
        flat = log_joint.reshape(shape[0], -1)
        theta = np.broadcast_to(nodes.log_sigma[:, None, :], shape).reshape(shape[0], -1)
        kk = np.broadcast_to(k[:, :, None], shape).reshape(shape[0], -1)
        flat_moments = {
            n: (m[0].reshape(shape[0], -1), m[1].reshape(shape[0], -1)) for n, m in moments.items()
        }
        return self._collect(flat, theta, flat_moments, {"k": (kk, kk * kk)})

    def _collect(
        self,
        log_joint: FloatArray,
        theta: FloatArray,
        rates: dict[str, tuple[FloatArray, FloatArray]],
        direct: dict[str, tuple[FloatArray, FloatArray]],
    ) -> _Posterior:
        """Normalise the node weights; the log evidence and each parameter's moments."""
        top = np.max(log_joint, axis=1, keepdims=True)
        top = np.where(np.isfinite(top), top, 0.0)
        weight = np.exp(log_joint - top)
        total = weight.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = weight / total
            log_evidence = np.log(total[:, 0]) + top[:, 0]
        first: dict[str, FloatArray] = {}
        second: dict[str, FloatArray] = {}
        for name, (m1, m2) in {**rates, **direct}.items():
            first[name] = np.sum(p * m1, axis=1)
            second[name] = np.sum(p * m2, axis=1)
        first["sigma"] = np.sum(p * theta, axis=1)
        second["sigma"] = np.sum(p * theta * theta, axis=1)
        sigma = np.exp(theta)
        return _Posterior(
            log_evidence=log_evidence,
            first=first,
            second=second,
            sigma_mean=np.sum(p * sigma, axis=1),
            sigma_second=np.sum(p * sigma * sigma, axis=1),
        )


# ------------------------------------------------------------------ the fit


@dataclass(frozen=True)
class _ModelFit:
    hyper: dict[str, _Hyper]
    posterior: _Posterior
    se: dict[str, FloatArray]  # se of each parameter's population mean, per group
    iterations: int
    converged: bool


def _population_moments(
    parameter: _Parameter, mu: FloatArray, tau: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Mean and sd of the group's population distribution of the parameter (sigma: of sigma)."""
    if parameter.kind != "log_sigma":
        low = np.full(mu.shape, parameter.low)
        high = np.full(mu.shape, parameter.high)
        mean, var = _tn_moments(low, high, mu, tau)
        return mean, np.sqrt(var)
    # E[exp(j theta)] for theta ~ Normal(mu, tau^2) truncated below at the floor.
    low = np.full(mu.shape, parameter.low)
    log_z = _log_mass(low, np.full(mu.shape, np.inf), mu, tau)

    def raw(j: float) -> FloatArray:
        shifted = mu + j * tau * tau
        out: FloatArray = np.exp(
            j * mu + 0.5 * j * j * tau * tau + _log_mass(low, low + np.inf, shifted, tau) - log_z
        )
        return out

    m1, m2 = raw(1.0), raw(2.0)
    return m1, np.sqrt(np.maximum(m2 - m1 * m1, 0.0))


def _group_sum(values: FloatArray, groups: IntArray, n_groups: int) -> FloatArray:
    out = np.bincount(
        groups, weights=np.where(np.isfinite(values), values, 0.0), minlength=n_groups
    )
    return np.asarray(out, dtype=np.float64)


class _Objective:
    """Minus the marginal log-likelihood of a model's hyperparameters, quadrature nodes fixed.

    The hyperparameters are a vector: for each parameter, mu then log tau of
    every group. The gradient is exact for the fixed nodes (Fisher's identity:
    the posterior mean of the prior's score).
    """

    def __init__(self, model: _Model, groups: IntArray, n_groups: int, nodes: _Nodes) -> None:
        self.model = model
        self.groups = groups
        self.n_groups = n_groups
        self.nodes = nodes
        self.count = np.bincount(groups, minlength=n_groups).astype(np.float64)
        self.adaptive = True

    def hyper(self, x: FloatArray) -> dict[str, _Hyper]:
        g = self.n_groups
        out: dict[str, _Hyper] = {}
        for i, p in enumerate(self.model.parameters):
            block = x[2 * g * i : 2 * g * (i + 1)]
            out[p.name] = _Hyper(block[:g].copy(), np.exp(block[g:]))
        return out

    def vector(self, hyper: dict[str, _Hyper]) -> FloatArray:
        return np.concatenate(
            [
                np.concatenate([hyper[p.name].mu, np.log(hyper[p.name].tau)])
                for p in self.model.parameters
            ]
        )

    def bounds(self) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for p in self.model.parameters:
            scale = (p.high - p.low) if math.isfinite(p.high) else 10.0
            top = p.high if math.isfinite(p.high) else p.low + 20.0
            out += [(p.low - scale, top + scale)] * self.n_groups
            out += [(math.log(MIN_TAU[p.kind]), math.log(10.0 * scale))] * self.n_groups
        return out

    def posterior(self, x: FloatArray) -> _Posterior:
        return self.model.posterior(self.hyper(x), self.groups, self.nodes)

    def per_group(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The log evidence per group and its gradient (one row per coordinate of x)."""
        hyper = self.hyper(x)
        # Nodes placed for these priors: with nodes held fixed the optimiser would
        # exploit the quadrature's error where a prior narrows between them.
        nodes = self.model.nodes(hyper, self.groups) if self.adaptive else self.nodes
        post = self.model.posterior(hyper, self.groups, nodes)
        g = self.n_groups
        value = np.bincount(self.groups, post.log_evidence, g).astype(np.float64)
        grads: list[FloatArray] = []
        for p in self.model.parameters:
            h = hyper[p.name]
            s1 = _group_sum(post.first[p.name], self.groups, g)
            s2 = _group_sum(post.second[p.name], self.groups, g)
            mean, var = _tn_moments(np.full(g, p.low), np.full(g, p.high), h.mu, h.tau)
            t2 = h.tau * h.tau
            grads.append((s1 - self.count * mean) / t2)
            spread = s2 - 2.0 * h.mu * s1 + self.count * h.mu * h.mu
            grads.append((spread - self.count * (var + (mean - h.mu) ** 2)) / t2)
        return value, np.concatenate(grads)

    def __call__(self, x: npt.NDArray[np.float64]) -> tuple[float, FloatArray]:
        value, gradient = self.per_group(np.asarray(x, dtype=np.float64))
        total = float(np.sum(value))
        if not math.isfinite(total):
            return 1e300, np.zeros_like(gradient)
        return -total, -gradient


def _fit_model(
    model: _Model, groups: IntArray, n_groups: int, start: dict[str, _Hyper]
) -> _ModelFit:
    """Type-II ML of the group priors, then the group means' standard errors.

    L-BFGS-B on the marginal likelihood (nodes placed for each trial point's
    priors), run again from its result until a run raises it by less than
    EM_TOLERANCE.
    """
    hyper = {k: v.copy() for k, v in start.items()}
    converged = False
    iterations = 0
    for _ in range(ROUNDS):
        objective = _Objective(model, groups, n_groups, model.nodes(hyper, groups))
        x0 = objective.vector(hyper)
        bounds = objective.bounds()
        low = np.array([b[0] for b in bounds])
        high = np.array([b[1] for b in bounds])
        x0 = np.clip(x0, low, high)
        # Preconditioned: each coordinate in units of its expected curvature (n / tau^2
        # for a mean, 2n for a log spread), so that L-BFGS-B sees a round problem.
        count = np.maximum(objective.count, 1.0)
        scale = np.concatenate(
            [
                np.concatenate([np.sqrt(count) / hyper[p.name].tau, np.sqrt(2.0 * count)])
                for p in model.parameters
            ]
        )

        def scaled(
            z: npt.NDArray[np.float64], o: _Objective = objective, c: FloatArray = scale
        ) -> tuple[float, FloatArray]:
            value, gradient = o(np.asarray(z, dtype=np.float64) / c)
            return value, gradient / c

        result = optimize.minimize(
            scaled,
            x0 * scale,
            jac=True,
            method="L-BFGS-B",
            bounds=list(zip(low * scale, high * scale, strict=True)),
            options={"maxiter": EM_ITERATIONS, "ftol": 1e-10, "gtol": 1e-6},
        )
        result.x = np.asarray(result.x, dtype=np.float64) / scale
        iterations += int(result.nit)
        x = np.asarray(result.x, dtype=np.float64)
        hyper = objective.hyper(x)
        # Converged when a run from re-centred nodes no longer raises the marginal
        # log-likelihood by EM_TOLERANCE: what is left is the quadrature's error and
        # directions in which the data are flat (a spread at its floor).
        # (A line search that cannot improve, L-BFGS-B's "ABNORMAL", is the same.)
        if float(objective(x0)[0]) - float(result.fun) < EM_TOLERANCE:
            converged = True
            break
    objective = _Objective(model, groups, n_groups, model.nodes(hyper, groups))
    x = objective.vector(hyper)
    posterior = objective.posterior(x)
    se = _standard_errors(objective, x)
    return _ModelFit(hyper, posterior, se, iterations, converged)


def _standard_errors(objective: _Objective, x: FloatArray) -> dict[str, FloatArray]:
    """se of each parameter's population mean per group: observed information, delta method.

    The Hessian of the group's marginal log-likelihood in all of the model's
    (mu, log tau) is the central difference of the exact gradient. A spread at
    its floor (or a mean at a bound) is held fixed, as a boundary estimate.
    """
    model, g = objective.model, objective.n_groups
    n_coord = x.size // g  # 2 per parameter
    step = 1e-4
    hessian = np.zeros((g, n_coord, n_coord))
    for c in range(n_coord):
        shift = np.zeros_like(x)
        shift[c * g : (c + 1) * g] = step
        plus = objective.per_group(x + shift)[1]
        minus = objective.per_group(x - shift)[1]
        column = (plus - minus) / (2.0 * step)  # d gradient / d coordinate c, per group
        hessian[:, :, c] = column.reshape(n_coord, g).T
    hessian = 0.5 * (hessian + np.transpose(hessian, (0, 2, 1)))
    bounds = objective.bounds()
    hyper = objective.hyper(x)
    out = {p.name: np.full(g, np.nan) for p in model.parameters}
    for group in range(g):
        if objective.count[group] == 0:
            continue
        free = [
            c
            for c in range(n_coord)
            if bounds[c * g][0] + 1e-6 < x[c * g + group] < bounds[c * g][1] - 1e-6
        ]
        full = _covariance(-hessian[group], free)
        for i, p in enumerate(model.parameters):
            h = hyper[p.name]
            mu, lt = float(h.mu[group]), math.log(float(h.tau[group]))

            def mean_at(m: float, t: float, p: _Parameter = p) -> float:
                return float(_population_moments(p, np.array([m]), np.array([math.exp(t)]))[0][0])

            d = 1e-6
            gradient = np.zeros(n_coord)
            gradient[2 * i] = (mean_at(mu + d, lt) - mean_at(mu - d, lt)) / (2 * d)
            gradient[2 * i + 1] = (mean_at(mu, lt + d) - mean_at(mu, lt - d)) / (2 * d)
            # The whole information matrix when it is positive definite; else this
            # parameter's own (mu, log tau), else its mu alone (a flat ridge, as M2's
            # k against its weights on data that hardly tell them apart).
            for cov, coords in (
                full,
                _covariance(-hessian[group], [c for c in free if c in (2 * i, 2 * i + 1)]),
                _covariance(-hessian[group], [c for c in free if c == 2 * i]),
            ):
                if cov is not None and 2 * i in coords:
                    vec = gradient[coords]
                    out[p.name][group] = math.sqrt(max(float(vec @ cov @ vec), 0.0))
                    break
    return out


def _covariance(info: FloatArray, coords: list[int]) -> tuple[FloatArray | None, list[int]]:
    """The inverse of the information restricted to coords, None unless positive definite."""
    if not coords:
        return None, coords
    block = info[np.ix_(coords, coords)]
    if not np.all(np.isfinite(block)) or np.any(np.linalg.eigvalsh(block) <= 0):
        return None, coords
    inverse: FloatArray = np.asarray(np.linalg.inv(block), dtype=np.float64)
    return inverse, coords


def _sums(data: object, trials: pd.DataFrame, lr_max: float) -> _Sums:
    assert hasattr(data, "x")
    x, y, good = data.x, data.y, data.good  # type: ignore[attr-defined]
    bad = ~good
    total = data.total  # type: ignore[attr-defined]
    n = total(np.ones_like(x))
    stats_good, stats_bad = _M2Stats.of(data, good), _M2Stats.of(data, bad)  # type: ignore[arg-type]
    low, high = K_BOUNDS
    e_max = np.maximum(stats_good.e_max, stats_bad.e_max)
    with np.errstate(divide="ignore"):
        floor_k = np.maximum(low, -1.0 / e_max)
    ml = fit_sessions(trials, lr_max=lr_max).reindex(data.index)  # type: ignore[attr-defined]

    def center(model: str) -> FloatArray:
        sigma = np.asarray(ml[f"{model}_sigma"], dtype=np.float64)
        return np.log(np.where(np.isfinite(sigma), np.maximum(sigma, SIGMA_FLOOR), 8.0))

    # k's likelihood by a Normal around the ML k: the profile log-likelihood's curvature.
    k_ml = np.asarray(ml["m2_k"], dtype=np.float64)
    k_ml = np.where(np.isfinite(k_ml), k_ml, 0.0)
    step = 0.25

    def profile(k: FloatArray) -> FloatArray:
        rss = stats_good.weight_and_rss(k, lr_max)[1] + stats_bad.weight_and_rss(k, lr_max)[1]
        out: FloatArray = -0.5 * n * np.log(np.maximum(rss / np.maximum(n, 1.0), SIGMA_FLOOR**2))
        return out

    mid = np.clip(k_ml, floor_k + step, high - step)
    curvature = -(profile(mid + step) - 2.0 * profile(mid) + profile(mid - step)) / step**2
    k_precision = np.clip(np.nan_to_num(curvature, nan=0.0), 1e-2, 1e4)
    return _Sums(
        n=n,
        yy=total(y * y),
        sxx=total(x * x),
        sxy=total(x * y),
        good=stats_good,
        bad=stats_bad,
        floor_k=floor_k,
        centers={"M0": center("m0"), "M1": center("m1"), "M2": center("m2")},
        k_center=k_ml,
        k_precision=k_precision,
    )


def _start(model: _Model, ml: pd.DataFrame, groups: IntArray, n_groups: int) -> dict[str, _Hyper]:
    """Starting priors: each group's mean and sd of the per-session ML estimates."""
    prefix = model.name.lower()
    out: dict[str, _Hyper] = {}
    for p in model.parameters:
        values = np.asarray(ml[f"{prefix}_{p.name}"], dtype=np.float64)
        if p.kind == "log_sigma":
            values = np.log(np.maximum(values, SIGMA_FLOOR))
        mu = np.zeros(n_groups)
        tau = np.ones(n_groups)
        for g in range(n_groups):
            v = values[(groups == g) & np.isfinite(values) & model.informed(p.name)]
            default_mu = {"rate": model.lr_max / 2.0, "k": 0.0, "log_sigma": math.log(8.0)}
            mu[g] = float(v.mean()) if v.size else default_mu[p.kind]
            spread = float(v.std()) if v.size > 1 else 0.0
            tau[g] = max(spread, 10.0 * MIN_TAU[p.kind])
        out[p.name] = _Hyper(mu, tau)
    return out


@dataclass(frozen=True)
class HierarchicalFit:
    """Per-session posterior means and sds, and the group priors they were drawn from."""

    sessions: pd.DataFrame  # index session: HB_COLUMNS + HB_EXTRA_COLUMNS
    groups: pd.DataFrame  # GROUP_COLUMNS
    converged: bool = True
    iterations: dict[str, int] | None = None
    lr_max: float = LR_MAX_DEFAULT

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


def _group_codes(
    trials: pd.DataFrame, index: pd.Index, group_keys: tuple[str, ...]
) -> tuple[pd.DataFrame, list[str], IntArray, int]:
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
    return labels, keys, np.asarray(group_codes, dtype=np.intp).ravel(), len(uniques)


def hierarchical_fit(
    trials: pd.DataFrame,
    *,
    group_keys: tuple[str, ...] = ("arm", "timepoint"),
    lr_max: float = LR_MAX_DEFAULT,
) -> HierarchicalFit:
    """M0, M1 and M2 fitted with a group prior per combination of ``group_keys``.

    ``group_keys`` absent from the trials are ignored (all sessions then form one
    group). A session's group is its first row's. Learning rates are bounded to
    [0, lr_max] (the study's setting, as in the per-session fit). Deterministic
    and independent of the order of the rows.
    """
    if not (math.isfinite(lr_max) and lr_max > 0):
        raise ValueError(f"lr_max must be a positive number, not {lr_max!r}")
    # A canonical row order: the sums never depend on the order the rows came in.
    try:
        trials = trials.sort_values(["session", "event"], kind="mergesort")
    except TypeError:  # mixed-type ids: order them by their text
        order = trials[["session", "event"]].astype(str).sort_values(["session", "event"])
        trials = trials.loc[order.index]
    data = _valid_trials(trials)
    index = data.index
    labels, keys, all_groups, n_groups = _group_codes(trials, index, group_keys)
    sums_all = _sums(data, trials, lr_max)
    ml_all = fit_sessions(trials, lr_max=lr_max).reindex(index)
    fitted = np.asarray(sums_all.n > 0)
    # Sessions without a valid trial say nothing: they are left out of the fit.
    keep = np.flatnonzero(fitted)
    sums = _Sums(
        n=sums_all.n[keep],
        yy=sums_all.yy[keep],
        sxx=sums_all.sxx[keep],
        sxy=sums_all.sxy[keep],
        good=_M2Stats(*(getattr(sums_all.good, f)[keep] for f in _M2_FIELDS)),
        bad=_M2Stats(*(getattr(sums_all.bad, f)[keep] for f in _M2_FIELDS)),
        floor_k=sums_all.floor_k[keep],
        centers={m: c[keep] for m, c in sums_all.centers.items()},
        k_center=sums_all.k_center[keep],
        k_precision=sums_all.k_precision[keep],
    )
    groups = all_groups[keep]
    ml = ml_all.iloc[keep]

    columns: dict[str, FloatArray] = {}
    rows: list[dict[str, object]] = []
    group_labels = _group_labels(labels, keys, all_groups, n_groups)
    converged = True
    iterations: dict[str, int] = {}
    for name in ("M0", "M1", "M2"):
        model = _Model(name, sums, lr_max)
        fit = _fit_model(model, groups, n_groups, _start(model, ml, groups, n_groups))
        converged &= fit.converged
        iterations[name] = fit.iterations
        post = fit.posterior
        prefix = f"hb_{name.lower()}"
        for p in model.parameters:
            if p.kind == "log_sigma":
                mean, second = post.sigma_mean, post.sigma_second
            else:
                mean, second = post.first[p.name], post.second[p.name]
            sd = np.sqrt(np.maximum(second - mean * mean, 0.0))
            has = model.informed(p.name)
            full_mean = np.full(len(index), np.nan)
            full_sd = np.full(len(index), np.nan)
            full_mean[keep] = np.where(has, mean, np.nan)
            full_sd[keep] = np.where(has, sd, np.nan)
            columns[f"{prefix}_{p.name}"] = full_mean
            columns[f"{prefix}_{p.name}_sd"] = full_sd
            h = fit.hyper[p.name]
            pop_mean, pop_sd = _population_moments(p, h.mu, h.tau)
            counts = np.bincount(groups[has], minlength=n_groups)
            for g in range(n_groups):
                n_g = int(counts[g])
                se = float(fit.se[p.name][g]) if n_g else math.nan
                mean_g = float(pop_mean[g]) if n_g else math.nan
                rows.append(
                    {
                        **group_labels[g],
                        "model": name,
                        "parameter": p.name,
                        "n_sessions": n_g,
                        "mean": mean_g,
                        "se": se,
                        "sd": float(pop_sd[g]) if n_g else math.nan,
                        "ci_low": mean_g - Z_95 * se,
                        "ci_high": mean_g + Z_95 * se,
                    }
                )
    sessions = pd.DataFrame({c: columns[c] for c in (*HB_COLUMNS, *HB_EXTRA_COLUMNS)}, index=index)
    table = pd.DataFrame(rows, columns=list(GROUP_COLUMNS))
    return HierarchicalFit(
        sessions=sessions,
        groups=table,
        converged=converged,
        iterations=iterations,
        lr_max=lr_max,
    )


_M2_FIELDS: Final = ("a0", "a1", "a2", "b0", "b1", "yy", "e_max")


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


# ------------------------------------------------------------------ the baseline


@dataclass(frozen=True)
class Prior:
    """A group prior per group code: mean, sd, and the standard error of the mean."""

    mean: FloatArray
    sd: FloatArray
    se: FloatArray
    n: FloatArray


def group_prior(slope: FloatArray, se: FloatArray, groups: IntArray, n_groups: int) -> Prior:
    """Type-II ML of Normal(mu_g, tau_g^2) from estimates with known standard errors (EM).

    The normal-normal model of the baseline. A session without information on
    the rate (se infinite or NaN) leaves its group's prior alone.
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
    tau2 = np.maximum(by_group((b - mu[groups]) ** 2) / safe_n, 1e-8)
    for _ in range(EM_ITERATIONS):
        post_precision = precision + 1.0 / tau2[groups]
        post_mean = (precision * b + mu[groups] / tau2[groups]) / post_precision
        new_mu = by_group(post_mean) / safe_n
        new_tau2 = by_group((post_mean - new_mu[groups]) ** 2 + 1.0 / post_precision) / safe_n
        new_tau2 = np.maximum(new_tau2, 1e-8)
        done = np.max(np.abs(new_mu - mu)) < 1e-10 and np.max(np.abs(new_tau2 - tau2)) < 1e-10
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


def normal_normal_shrinkage(
    estimate: npt.ArrayLike, se: npt.ArrayLike, groups: npt.ArrayLike
) -> FloatArray:
    """The simple baseline: ML estimates shrunk toward their group's EB Normal prior.

    No bound, no truncation, the clipped ML rate taken as the datum with its
    standard error: what one would do by hand with a table of per-session
    estimates and their SEs.
    """
    b = np.asarray(estimate, dtype=np.float64)
    s = np.asarray(se, dtype=np.float64)
    _uniques, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    codes = np.asarray(codes, dtype=np.intp).ravel()
    prior = group_prior(b, s, codes, int(codes.max()) + 1)
    tau2 = prior.sd[codes] ** 2
    shrunk: FloatArray = (b / s**2 + prior.mean[codes] / tau2) / (1.0 / s**2 + 1.0 / tau2)
    return shrunk
