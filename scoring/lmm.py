"""Linear mixed models fitted by REML, with Satterthwaite degrees of freedom.

PROTOCOL.md, "Group level, version 2": the paper reports its mixed model as R's
lmerTest does (t statistics, Satterthwaite df: the paper's t(216)). This module
computes the same figures without R, for models with one grouping factor
(participants) and a small random-effects design per group (an intercept, or
an intercept and a valence slope).

The parameterisation is lme4's (Bates et al. 2015): b_i = sigma Lambda u_i with
u_i ~ N(0, I) and Lambda lower-triangular with elements theta (column-major),
so that V_i = sigma^2 (I + Z_i Lambda Lambda' Z_i'). Everything is computed
from per-group sufficient statistics (Z_i'Z_i, Z_i'X_i, Z_i'y_i), so one
evaluation of the deviance costs O(groups * q^2 * p), whatever the number of
trials: 200,000 trials fit in well under a second.

The Satterthwaite df follow lmerTest (Kuznetsova et al. 2017) to the letter:
the covariance of the variance parameters (theta, sigma) is twice the inverse
Hessian of the REML deviance at the optimum; the gradient of each
coefficient's variance with respect to (theta, sigma) is analytic (see
``_covariance_gradient``); df = 2 Var^2 / (g' A g). The Hessian is computed by
Richardson-extrapolated central differences (the method of R's numDeriv,
which lmerTest uses), on a deviance that is cheap to evaluate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import optimize, stats

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

_LOG_2PI: Final = math.log(2.0 * math.pi)
# lme4's convergence check: the gradient of the deviance scaled by the Hessian
# (a Newton step) must be under this.
RELATIVE_GRADIENT_TOLERANCE: Final = 2e-3
# lme4 calls a fit singular when a diagonal element of Lambda is this close to 0.
SINGULAR_TOLERANCE: Final = 1e-4


@dataclass(frozen=True)
class _Statistics:
    """Per-group cross-products: all that the deviance needs."""

    n: int
    p: int
    q: int
    ztz: FloatArray  # (groups, q, q)
    ztx: FloatArray  # (groups, q, p)
    zty: FloatArray  # (groups, q)
    xtx: FloatArray  # (p, p)
    xty: FloatArray  # (p,)
    yty: float

    @classmethod
    def of(cls, y: FloatArray, x: FloatArray, z: FloatArray, groups: IntArray) -> _Statistics:
        n_groups = int(groups.max()) + 1 if groups.size else 0
        n, p = x.shape
        q = z.shape[1]

        def by_group(values: FloatArray) -> FloatArray:
            return np.bincount(groups, weights=values, minlength=n_groups).astype(np.float64)

        ztz = np.empty((n_groups, q, q))
        ztx = np.empty((n_groups, q, p))
        zty = np.empty((n_groups, q))
        for a in range(q):
            zty[:, a] = by_group(z[:, a] * y)
            for b in range(q):
                ztz[:, a, b] = by_group(z[:, a] * z[:, b])
            for j in range(p):
                ztx[:, a, j] = by_group(z[:, a] * x[:, j])
        return cls(
            n=n,
            p=p,
            q=q,
            ztz=ztz,
            ztx=ztx,
            zty=zty,
            xtx=x.T @ x,
            xty=x.T @ y,
            yty=float(y @ y),
        )


def _lambda(theta: FloatArray, q: int) -> FloatArray:
    """Lower-triangular relative covariance factor from theta (column-major, as lme4)."""
    out = np.zeros((q, q))
    rows, cols = np.tril_indices(q)
    order = np.lexsort((rows, cols))  # column-major: by column, then row
    out[rows[order], cols[order]] = theta
    return out


@dataclass(frozen=True)
class _Solution:
    """Everything that follows from one theta."""

    logdet_m: float
    a: FloatArray  # X'V^-1 X (V in units of sigma^2)
    logdet_a: float
    beta: FloatArray
    rss: float  # penalised residual sum of squares r^2(theta)
    w: FloatArray  # (groups, q, p): Z_i' V_i^-1 X_i
    lam: FloatArray


def _solve(s: _Statistics, theta: FloatArray) -> _Solution | None:
    """GLS fit for a given theta; None when X'V^-1X is not positive definite."""
    lam = _lambda(theta, s.q)
    m = np.einsum("ab,gbc,cd->gad", lam.T, s.ztz, lam) + np.eye(s.q)
    chol_m = np.linalg.cholesky(m)
    logdet_m = float(2.0 * np.log(np.diagonal(chol_m, axis1=1, axis2=2)).sum())
    u = np.einsum("ab,gbj->gaj", lam.T, s.ztx)  # Lambda' Z'X
    v = np.einsum("ab,gb->ga", lam.T, s.zty)  # Lambda' Z'y
    m_inv_u = np.linalg.solve(m, u)
    m_inv_v = np.linalg.solve(m, v[:, :, np.newaxis])[:, :, 0]
    a = s.xtx - np.einsum("gai,gaj->ij", u, m_inv_u)
    b = s.xty - np.einsum("gai,ga->i", u, m_inv_v)
    c = s.yty - float(np.einsum("ga,ga->", v, m_inv_v))
    try:
        chol_a = np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        return None
    logdet_a = float(2.0 * np.log(np.diag(chol_a)).sum())
    beta = np.linalg.solve(a, b)
    rss = max(c - float(b @ beta), 1e-300)
    # Z'V^-1 X = Z'X - Z'Z Lambda M^-1 Lambda' Z'X, per group.
    w = s.ztx - np.einsum("gab,bc,gcj->gaj", s.ztz, lam, m_inv_u)
    return _Solution(logdet_m, a, logdet_a, beta, rss, w, lam)


def _profiled_deviance(s: _Statistics, theta: FloatArray) -> float:
    """REML criterion with sigma profiled out (what lme4 minimises)."""
    sol = _solve(s, theta)
    if sol is None:
        return math.inf
    dof = s.n - s.p
    return sol.logdet_m + sol.logdet_a + dof * (1.0 + _LOG_2PI + math.log(sol.rss / dof))


def _deviance(s: _Statistics, varpar: FloatArray) -> float:
    """REML deviance as a function of (theta, sigma): lmerTest's devfun_vp."""
    sol = _solve(s, varpar[:-1])
    if sol is None:
        return math.inf
    sigma2 = float(varpar[-1]) ** 2
    dof = s.n - s.p
    return sol.logdet_m + sol.logdet_a + sol.rss / sigma2 + dof * (_LOG_2PI + math.log(sigma2))


def _covariance_gradient(s: _Statistics, theta: FloatArray, sigma: float) -> FloatArray:
    """d Cov(beta) / d (theta_k, sigma), shape (k + 1, p, p), analytic.

    Cov(beta) = sigma^2 A^-1 with A = X'V^-1X; dA/dtheta_k = -X'V^-1 dV V^-1 X
    where dV_i = Z_i (E_k Lambda' + Lambda E_k') Z_i' and E_k = dLambda/dtheta_k.
    """
    sol = _solve(s, theta)
    assert sol is not None  # evaluated at the optimum, where A is positive definite
    a_inv = np.linalg.inv(sol.a)
    out = np.empty((theta.size + 1, s.p, s.p))
    for k in range(theta.size):
        unit = np.zeros(theta.size)
        unit[k] = 1.0
        e = _lambda(unit, s.q)
        d = e @ sol.lam.T + sol.lam @ e.T
        middle = np.einsum("gai,ab,gbj->ij", sol.w, d, sol.w)
        out[k] = sigma**2 * a_inv @ middle @ a_inv
    out[-1] = 2.0 * sigma * a_inv
    return out


def richardson_hessian(
    f: Callable[[FloatArray], float], x: FloatArray, *, relative_step: float = 1e-2
) -> FloatArray:
    """Hessian by central differences, Richardson-extrapolated over 4 halvings of the step.

    Central differences err by c2 h^2 + c4 h^4 + ...; combining the estimates at
    h, h/2, h/4, h/8 cancels those terms one by one (numDeriv's method).
    """
    k = x.size
    steps = np.where(np.abs(x) > 1e-4, relative_step * np.abs(x), 1e-4)
    n_levels = 4
    estimates = np.empty((n_levels, k, k))
    f0 = f(x)
    for level in range(n_levels):
        h = steps / 2.0**level
        hess = np.empty((k, k))
        for i in range(k):
            ei = np.zeros(k)
            ei[i] = h[i]
            hess[i, i] = (f(x + ei) - 2.0 * f0 + f(x - ei)) / h[i] ** 2
            for j in range(i):
                ej = np.zeros(k)
                ej[j] = h[j]
                value = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                    4.0 * h[i] * h[j]
                )
                hess[i, j] = hess[j, i] = value
        estimates[level] = hess
    for order in range(1, n_levels):
        factor = 4.0**order
        estimates = (factor * estimates[1:] - estimates[:-1]) / (factor - 1.0)
    result: FloatArray = estimates[0]
    return result


@dataclass(frozen=True)
class LmmFit:
    """A fitted linear mixed model: fixed effects with Satterthwaite df."""

    names: tuple[str, ...]
    estimate: FloatArray
    std_error: FloatArray
    df: FloatArray
    t_value: FloatArray
    p_value: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
    theta: FloatArray
    sigma: float
    random_covariance: FloatArray  # (q, q), the random effects' covariance (sigma^2 Lambda Lambda')
    reml_criterion: float
    converged: bool
    singular: bool
    messages: tuple[str, ...]


def lmm_fit(
    y: FloatArray,
    x: FloatArray,
    z: FloatArray,
    groups: IntArray,
    *,
    names: Sequence[str],
    confidence: float = 0.95,
) -> LmmFit:
    """Fit y = X beta + Z b_group + e by REML; Satterthwaite df for every coefficient.

    ``groups`` holds integer codes 0..G-1; ``z`` is the per-trial random-effects
    design (a column of ones for a random intercept). X must have full column
    rank (raise ValueError otherwise). Deterministic: the same arrays give the
    same fit, bit for bit.
    """
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    if x.shape[0] != y.size or z.shape[0] != y.size or groups.size != y.size:
        raise ValueError("y, X, Z and groups must have one row per observation")
    if np.linalg.matrix_rank(x) < x.shape[1]:
        raise ValueError("singular design")
    if y.size <= x.shape[1]:
        raise ValueError("fewer observations than fixed effects")
    s = _Statistics.of(y, x, z, groups)
    q = s.q
    rows, cols = np.tril_indices(q)
    order = np.lexsort((rows, cols))
    diagonal = (rows[order] == cols[order]).astype(bool)
    bounds = [(0.0, None) if d else (None, None) for d in diagonal]
    start = diagonal.astype(np.float64)  # lme4's start: Lambda = I

    def objective(theta: FloatArray) -> float:
        return _profiled_deviance(s, theta)

    messages: list[str] = []
    found = optimize.minimize(
        objective,
        start,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 500},
    )
    theta = np.asarray(found.x, dtype=np.float64)

    # Polish: L-BFGS-B stops on a flat-enough deviance; Nelder-Mead from there
    # (kept inside the bounds) pins theta down to the precision lmerTest's
    # df need.
    def folded(t: FloatArray) -> float:
        return objective(np.where(diagonal, np.abs(t), t).astype(np.float64))

    polished = optimize.minimize(
        folded,
        theta,
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 4000},
    )
    candidate = np.where(diagonal, np.abs(polished.x), polished.x)
    if objective(candidate) <= objective(theta):
        theta = np.asarray(candidate, dtype=np.float64)
    converged = bool(found.success) or bool(polished.success)
    if not converged:
        messages.append(f"optimizer: {found.message}")

    sol = _solve(s, theta)
    if sol is None:
        raise ValueError("singular design")
    dof = s.n - s.p
    sigma = math.sqrt(sol.rss / dof)
    singular = bool(np.any(np.abs(theta[diagonal]) < SINGULAR_TOLERANCE))
    if singular:
        messages.append("boundary (singular) fit: a random-effect variance is estimated at 0")

    interior = ~singular
    gradient_check = _relative_gradient(objective, theta, diagonal)
    if interior and gradient_check > RELATIVE_GRADIENT_TOLERANCE:
        converged = False
        messages.append(
            f"Model failed to converge with max|grad| = {gradient_check:.3g} "
            f"(tol = {RELATIVE_GRADIENT_TOLERANCE})"
        )

    covariance = sigma**2 * np.linalg.inv(sol.a)
    std_error = np.sqrt(np.diag(covariance))
    varpar = np.append(theta, sigma)
    hessian = richardson_hessian(lambda v: _deviance(s, v), varpar)
    df = np.full(s.p, np.nan)
    try:
        eigenvalues = np.linalg.eigvalsh(hessian)
        if np.all(eigenvalues > 0):
            vcov_varpar = 2.0 * np.linalg.inv(hessian)
            jac = _covariance_gradient(s, theta, sigma)
            for j in range(s.p):
                g = jac[:, j, j]
                denominator = float(g @ vcov_varpar @ g)
                df[j] = 2.0 * covariance[j, j] ** 2 / denominator
        else:
            messages.append(
                "the REML deviance's Hessian is not positive definite: no Satterthwaite df"
            )
    except np.linalg.LinAlgError:
        messages.append("the REML deviance's Hessian is singular: no Satterthwaite df")

    t_value = sol.beta / std_error
    p_value = 2.0 * stats.t.sf(np.abs(t_value), df)
    quantile = stats.t.ppf(0.5 + confidence / 2.0, df)
    lam = sol.lam
    return LmmFit(
        names=tuple(names),
        estimate=sol.beta,
        std_error=std_error,
        df=df,
        t_value=t_value,
        p_value=np.asarray(p_value, dtype=np.float64),
        ci_low=sol.beta - quantile * std_error,
        ci_high=sol.beta + quantile * std_error,
        theta=theta,
        sigma=sigma,
        random_covariance=sigma**2 * lam @ lam.T,
        reml_criterion=_profiled_deviance(s, theta),
        converged=converged,
        singular=singular,
        messages=tuple(messages),
    )


def _relative_gradient(
    objective: Callable[[FloatArray], float], theta: FloatArray, diagonal: npt.NDArray[np.bool_]
) -> float:
    """max |H^-1 g| of the profiled deviance at theta (lme4's scaled-gradient check)."""
    step = 1e-5
    k = theta.size
    grad = np.empty(k)
    for i in range(k):
        e = np.zeros(k)
        e[i] = step
        grad[i] = (objective(theta + e) - objective(theta - e)) / (2.0 * step)
    try:
        hess = richardson_hessian(objective, theta)
        scaled = np.linalg.solve(hess, grad)
    except np.linalg.LinAlgError:
        return float(np.max(np.abs(grad)))
    return float(np.max(np.abs(scaled)))
