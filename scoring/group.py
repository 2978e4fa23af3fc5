"""Group level: per arm x timepoint summaries and the paper's mixed model.

PROTOCOL.md, "Group level" and "Group level, version 2": mean and SEM of the
updates, the update bias and the learning rates per arm x timepoint, and the
linear mixed model update ~ valence * arm * timepoint + |EE| + (1 | participant)
of Bottemanne et al. (JAMA Psychiatry 2022), fitted by REML with Satterthwaite
df as R's lmerTest reports it (scoring.lmm).

One rule for reference levels (``factor_levels``): the study's order of arms
and timepoints, the first present level being the reference; without a study,
an explicit order or the sorted levels. Valence's reference is bad news.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from common.scalars import json_scalar
from scoring.lmm import lmm_fit
from scoring.metrics import ensure_derived

SUMMARY_METRICS: Final = (
    "update_good",
    "update_bad",
    "update_bias",
    # Score version 2: the bias controlled for the estimation error, beside the raw one.
    "update_bias_ee",
    "alpha_good",
    "alpha_bad",
    "m1_lr_good",
    "m1_lr_bad",
)
GROUP_KEYS: Final = ("arm", "timepoint")
SUMMARY_COLUMNS: Final = (
    *GROUP_KEYS,
    "n_sessions",
    *(f"{m}_{s}" for m in SUMMARY_METRICS for s in ("mean", "sem")),
)
# DESIGN.md, "Command line": the coefficients' keys, in this order.
COEFFICIENT_COLUMNS: Final = (
    "term",
    "estimate",
    "std_error",
    "df",
    "t_value",
    "p_value",
    "ci_low",
    "ci_high",
)
# The paper's contrast: the valence coefficient is good news minus bad news.
VALENCE_REFERENCE: Final = "bad"
CONFIDENCE_LEVEL: Final = 0.95


def group_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean and SEM of the update and learning-rate scores per arm x timepoint.

    Groups appear in their order of first appearance; a session with no arm or
    timepoint forms its own group. A missing metric column reads as NaN. The
    SEM is the sample sd (ddof 1) over the sessions where the figure is
    defined, divided by the square root of their number: NaN under two.
    """
    missing = [k for k in GROUP_KEYS if k not in scores.columns]
    if missing:
        raise ValueError(f"scores lack column(s): {', '.join(missing)}")
    if scores.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SUMMARY_COLUMNS})
    values = pd.DataFrame(
        {
            m: pd.to_numeric(scores[m], errors="coerce") if m in scores.columns else np.nan
            for m in SUMMARY_METRICS
        },
        index=scores.index,
    )
    keys = [scores[k] for k in GROUP_KEYS]
    grouped = values.groupby(keys, sort=False, dropna=False)
    mean = grouped.mean()
    sem = grouped.std(ddof=1) / grouped.count() ** 0.5
    size = grouped.size()
    out = pd.DataFrame(index=mean.index)
    out["n_sessions"] = size.astype(np.int64)
    for metric in SUMMARY_METRICS:
        out[f"{metric}_mean"] = mean[metric]
        out[f"{metric}_sem"] = sem[metric]
    out.index.names = list(GROUP_KEYS)
    return out.reset_index().loc[:, list(SUMMARY_COLUMNS)]


def attach_session_attributes(
    scores: pd.DataFrame,
    trials: pd.DataFrame,
    columns: Sequence[str] = ("participant", *GROUP_KEYS),
) -> pd.DataFrame:
    """Scores (indexed by session) with each session's first non-missing attributes."""
    out = scores.copy()
    for column in columns:
        if column in trials.columns:
            first = trials.groupby("session", sort=False, dropna=False)[column].first()
            out[column] = first.reindex(out.index)
        else:
            out[column] = np.nan
    return out


def factor_levels(present: Iterable[object], order: Sequence[str] | None, factor: str) -> list[str]:
    """The levels of a factor present in the data, in the given order (sorted without one).

    The first is the reference level of every fit. A present level missing from
    the order is an error: silently appending it would make the reference
    depend on what the caller forgot.
    """
    levels = {str(v) for v in present}
    if order is None:
        return sorted(levels)
    unknown = sorted(levels - {str(o) for o in order})
    if unknown:
        raise ValueError(
            f"{factor} level(s) {', '.join(map(repr, unknown))} are not in the {factor} "
            f"order {list(order)}"
        )
    return [str(o) for o in dict.fromkeys(order) if str(o) in levels]


@dataclass(frozen=True)
class MixedModelResult:
    """The fitted mixed model, or why it could not be fitted (``reason``)."""

    formula: str
    n_obs: int
    n_groups: int
    converged: bool
    coefficients: pd.DataFrame
    reason: str = ""
    reference_levels: dict[str, str] = field(default_factory=dict)
    group_variance: float = math.nan
    residual_sd: float = math.nan
    random_effects: dict[str, float] = field(default_factory=dict)
    reml_criterion: float = math.nan
    singular: bool = False
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form; NaN becomes None."""
        rows = [
            {k: json_scalar(v) for k, v in row.items()}
            for row in self.coefficients.to_dict(orient="records")
        ]
        return {
            "formula": self.formula,
            "method": "REML, Satterthwaite df (as lmerTest)",
            "n_obs": self.n_obs,
            "n_groups": self.n_groups,
            "converged": self.converged,
            "singular": self.singular,
            "reason": self.reason,
            "reference_levels": dict(self.reference_levels),
            "group_variance": json_scalar(self.group_variance),
            "residual_sd": json_scalar(self.residual_sd),
            "random_effects": {k: json_scalar(v) for k, v in self.random_effects.items()},
            "reml_criterion": json_scalar(self.reml_criterion),
            "warnings": list(self.warnings),
            "coefficients": rows,
        }


def _empty_coefficients() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=object if c == "term" else np.float64) for c in COEFFICIENT_COLUMNS}
    )


def _factor_name(factor: str, reference: str) -> str:
    return f"C({factor}, Treatment({reference!r}))"


def _model_frame(
    trials: pd.DataFrame, covariates: pd.DataFrame | None
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Valid trials as model columns, in a canonical row order; factors present; covariates."""
    derived = ensure_derived(trials)
    valid = derived.loc[~derived["excluded"].astype(bool)]
    data = pd.DataFrame(
        {
            "update": pd.to_numeric(valid["update"], errors="coerce"),
            "ee": pd.to_numeric(valid["ee"], errors="coerce"),
            "valence": valid["valence"].astype(str),
            "participant": valid["participant"],
        }
    )
    factors = [f for f in ("arm", "timepoint") if f in valid.columns]
    for factor in factors:
        data[factor] = valid[factor]
    names: list[str] = []
    if covariates is not None:
        for column in covariates.columns:
            name = str(column)
            if not name.isidentifier() or name in data.columns:
                raise ValueError(f"covariate name {name!r} is not usable in a formula")
            values = pd.to_numeric(covariates[column], errors="coerce")
            by_participant = dict(zip(covariates.index.astype(str), values, strict=True))
            data[name] = data["participant"].astype(str).map(by_participant).astype(np.float64)
            names.append(name)
    data = data.dropna()
    data["participant"] = data["participant"].astype(str)
    for factor in factors:
        data[factor] = data[factor].astype(str)
    # A canonical row order: floating-point sums then never depend on the
    # order the rows came in, so two fits of the same data are identical.
    data = data.sort_values(list(data.columns), kind="mergesort").reset_index(drop=True)
    return data, factors, names


def mixed_model(
    trials: pd.DataFrame,
    *,
    arm_order: Sequence[str] | None = None,
    timepoint_order: Sequence[str] | None = None,
    covariates: pd.DataFrame | None = None,
    random_slope: bool = False,
) -> MixedModelResult:
    """Fit update ~ valence * arm * timepoint + ee [+ covariates] + (1 | participant).

    REML, t statistics with Satterthwaite df (scoring.lmm; equal to lmerTest).
    Reference levels: bad news; the first arm and timepoint of ``arm_order`` /
    ``timepoint_order`` present in the data (``factor_levels``; sorted without
    an order). ``covariates``: numeric columns indexed by participant id (age,
    education, any participant attribute), added as fixed effects; a trial of a
    participant without a value is left out. ``random_slope`` fits
    (1 + valence | participant). A factor with a single level is dropped from
    the formula, which says so. Too little data, a singular design or a failed
    fit give a result with ``reason`` set and no coefficients, never an
    exception.
    """
    slope = random_slope
    if "participant" not in trials.columns:
        return _failed(_formula([], [], [], slope), "no participant column")
    try:
        data, factors, covariate_names = _model_frame(trials, covariates)
    except ValueError as error:
        return _failed(_formula([], [], [], slope), str(error))

    kept: list[tuple[str, list[str]]] = []
    notes: list[str] = []
    references: dict[str, str] = {"valence": VALENCE_REFERENCE}
    orders = {"arm": arm_order, "timepoint": timepoint_order}
    for factor in ("arm", "timepoint"):
        if factor not in factors:
            notes.append(f"{factor} dropped: no {factor} column")
            continue
        try:
            levels = factor_levels(data[factor], orders[factor], factor)
        except ValueError as error:
            return _failed(_formula([], notes, covariate_names, slope), str(error))
        if len(levels) < 2:
            notes.append(f"{factor} dropped: a single level")
            continue
        references[factor] = levels[0]
        kept.append((factor, levels))
    formula = _formula(
        [_factor_name(f, levels[0]) for f, levels in kept], notes, covariate_names, slope
    )

    n_obs = len(data)
    participants, codes = np.unique(data["participant"].to_numpy(dtype=str), return_inverse=True)
    n_groups = int(participants.size)
    if n_groups < 2:
        return _failed(formula, f"{n_groups} participant(s) with valid trials: need 2")
    if data["valence"].nunique() < 2:
        return _failed(formula, "valid trials of one valence only", n_obs, n_groups)

    names, x = _design(data, kept, covariate_names)
    good = (data["valence"] == "good").to_numpy(dtype=np.float64)
    z: npt.NDArray[np.float64] = (
        np.column_stack([np.ones(n_obs), good]) if slope else np.ones((n_obs, 1))
    )
    y = data["update"].to_numpy(dtype=np.float64)
    if np.linalg.matrix_rank(x) < x.shape[1]:
        return _failed(formula, "singular design", n_obs, n_groups, references)
    try:
        fit = lmm_fit(y, x, z, np.asarray(codes, dtype=np.intp), names=names)
    # The contract is a reason string, never an exception: a degenerate fit
    # shows up as LinAlgError or ValueError from NumPy / SciPy.
    except (ValueError, np.linalg.LinAlgError) as error:
        return _failed(formula, f"fit failed: {error}", n_obs, n_groups, references)

    coefficients = pd.DataFrame(
        {
            "term": list(fit.names),
            "estimate": fit.estimate,
            "std_error": fit.std_error,
            "df": fit.df,
            "t_value": fit.t_value,
            "p_value": fit.p_value,
            "ci_low": fit.ci_low,
            "ci_high": fit.ci_high,
        }
    )
    random_effects = {"participant_intercept_var": float(fit.random_covariance[0, 0])}
    if slope:
        random_effects["participant_valence_var"] = float(fit.random_covariance[1, 1])
        random_effects["participant_intercept_valence_cov"] = float(fit.random_covariance[0, 1])
    return MixedModelResult(
        formula=formula,
        n_obs=n_obs,
        n_groups=n_groups,
        converged=fit.converged and not fit.singular,
        coefficients=coefficients,
        reference_levels=references,
        group_variance=float(fit.random_covariance[0, 0]),
        residual_sd=fit.sigma,
        random_effects=random_effects,
        reml_criterion=fit.reml_criterion,
        singular=fit.singular,
        warnings=fit.messages,
    )


def _design(
    data: pd.DataFrame, kept: list[tuple[str, list[str]]], covariates: list[str]
) -> tuple[list[str], npt.NDArray[np.float64]]:
    """Treatment-coded columns: intercept, main effects, ee, covariates, interactions.

    Names follow patsy's (statsmodels') spelling, which the dashboard labels.
    """
    n = len(data)
    valence_name = _factor_name("valence", VALENCE_REFERENCE)
    factors: list[list[tuple[str, npt.NDArray[np.float64]]]] = [
        [(f"{valence_name}[T.good]", np.asarray(data["valence"] == "good", dtype=np.float64))]
    ]
    for factor, levels in kept:
        column = data[factor].to_numpy(dtype=str)
        factors.append(
            [
                (f"{_factor_name(factor, levels[0])}[T.{level}]", (column == level).astype(float))
                for level in levels[1:]
            ]
        )
    names = ["Intercept"]
    columns = [np.ones(n)]
    for factor_columns in factors:
        for name, values in factor_columns:
            names.append(name)
            columns.append(values)
    names.append("ee")
    columns.append(data["ee"].to_numpy(dtype=np.float64))
    for covariate in covariates:
        names.append(covariate)
        columns.append(data[covariate].to_numpy(dtype=np.float64))
    # Interactions by order (two-way, then three-way), each in the factors' order.
    for size in range(2, len(factors) + 1):
        for subset in itertools.combinations(factors, size):
            for combination in itertools.product(*subset):
                names.append(":".join(name for name, _ in combination))
                product = np.ones(n)
                for _, values in combination:
                    product = product * values
                columns.append(product)
    return names, np.column_stack(columns)


def _fixed_effects(factors: list[str], covariates: Sequence[str] = ()) -> str:
    """The fixed part: valence crossed with the kept factors, plus EE and covariates."""
    valence = _factor_name("valence", VALENCE_REFERENCE)
    extra = "".join(f" + {c}" for c in covariates)
    return f"update ~ {' * '.join([valence, *factors])} + ee{extra}"


def _formula(
    factors: list[str], notes: list[str], covariates: Sequence[str], random_slope: bool
) -> str:
    """The whole model as reported, with a note on each dropped factor."""
    random = "(1 + valence | participant)" if random_slope else "(1 | participant)"
    formula = f"{_fixed_effects(factors, covariates)} + {random}"
    if notes:
        formula += f"  [{'; '.join(notes)}]"
    return formula


def _failed(
    formula: str,
    reason: str,
    n_obs: int = 0,
    n_groups: int = 0,
    references: Mapping[str, str] | None = None,
) -> MixedModelResult:
    return MixedModelResult(
        formula=formula,
        n_obs=n_obs,
        n_groups=n_groups,
        converged=False,
        coefficients=_empty_coefficients(),
        reason=reason,
        reference_levels=dict(references or {}),
    )
