"""Group level: per arm x timepoint summaries and the paper's mixed model.

PROTOCOL.md, "Group level": mean and SEM of the updates, the update bias and
the learning rates per arm x timepoint, and the linear mixed model
update ~ valence * arm * timepoint + |EE| + (1 | participant) of Bottemanne
et al. (JAMA Psychiatry 2022).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from scoring.metrics import ensure_derived, jsonable

SUMMARY_METRICS: Final = (
    "update_good",
    "update_bad",
    "update_bias",
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
COEFFICIENT_COLUMNS: Final = (
    "term",
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "p_value",
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
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form; NaN becomes None."""
        rows = [
            {k: jsonable(v) for k, v in row.items()}
            for row in self.coefficients.to_dict(orient="records")
        ]
        return {
            "formula": self.formula,
            "n_obs": self.n_obs,
            "n_groups": self.n_groups,
            "converged": self.converged,
            "reason": self.reason,
            "reference_levels": dict(self.reference_levels),
            "group_variance": jsonable(self.group_variance),
            "warnings": list(self.warnings),
            "coefficients": rows,
        }


def _empty_coefficients() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=object if c == "term" else np.float64) for c in COEFFICIENT_COLUMNS}
    )


def mixed_model(
    trials: pd.DataFrame,
    *,
    arm_reference: str | None = None,
    timepoint_reference: str | None = None,
) -> MixedModelResult:
    """Fit update ~ valence * arm * timepoint + ee + (1 | participant) on valid trials.

    The reference of valence is "bad", so its coefficient is good minus bad;
    arm and timepoint default to their first level in order of appearance
    (the control arm and the baseline, when the study lists them first). A
    factor with a single level is dropped from the formula, which says so.
    Trials without a participant (or without an arm / timepoint, where those
    are in the model) are left out. Too little data, a singular design or a
    failed fit give a result with ``reason`` set and no coefficients, never an
    exception.
    """
    if "participant" not in trials.columns:
        return _failed(_formula([], []), "no participant column")
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
    data = data.dropna()
    for factor in factors:
        data[factor] = data[factor].astype(str)

    terms: list[str] = []
    notes: list[str] = []
    references: dict[str, str] = {"valence": VALENCE_REFERENCE}
    chosen = {"arm": arm_reference, "timepoint": timepoint_reference}
    for factor in ("arm", "timepoint"):
        if factor not in factors:
            notes.append(f"{factor} dropped: no {factor} column")
            continue
        levels = [str(v) for v in pd.unique(data[factor])]
        if len(levels) < 2:
            notes.append(f"{factor} dropped: a single level")
            continue
        reference = chosen[factor] or levels[0]
        if reference not in levels:
            return _failed(
                _formula(terms, notes),
                f"{factor} reference {reference!r} is not one of {levels}",
            )
        references[factor] = reference
        terms.append(f"C({factor}, Treatment({reference!r}))")
    formula = _formula(terms, notes)

    n_obs = len(data)
    n_groups = int(data["participant"].nunique())
    if n_groups < 2:
        return _failed(formula, f"{n_groups} participant(s) with valid trials: need 2")
    if data["valence"].nunique() < 2:
        return _failed(formula, "valid trials of one valence only", n_obs, n_groups)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = smf.mixedlm(_fixed_effects(terms), data, groups=data["participant"])
            exog = np.asarray(model.exog, dtype=np.float64)
            if np.linalg.matrix_rank(exog) < exog.shape[1]:
                return _failed(formula, "singular design", n_obs, n_groups)
            fitted = model.fit(reml=True)
        # statsmodels reports a degenerate fit through many exception types
        # (LinAlgError, ValueError, IndexError from patsy...); the contract
        # here is a reason string, never an exception.
        except Exception as error:  # noqa: BLE001
            return _failed(formula, f"fit failed: {error}", n_obs, n_groups)
    messages = tuple(dict.fromkeys(str(w.message) for w in caught))
    did_not_converge = any(issubclass(w.category, ConvergenceWarning) for w in caught)

    names = list(fitted.fe_params.index)
    intervals = fitted.conf_int(alpha=1.0 - CONFIDENCE_LEVEL).loc[names]
    coefficients = pd.DataFrame(
        {
            "term": names,
            "estimate": np.asarray(fitted.fe_params, dtype=np.float64),
            "std_error": np.asarray(fitted.bse_fe, dtype=np.float64),
            "ci_low": np.asarray(intervals.iloc[:, 0], dtype=np.float64),
            "ci_high": np.asarray(intervals.iloc[:, 1], dtype=np.float64),
            "p_value": np.asarray(fitted.pvalues.loc[names], dtype=np.float64),
        }
    )
    return MixedModelResult(
        formula=formula,
        n_obs=n_obs,
        n_groups=n_groups,
        converged=bool(fitted.converged) and not did_not_converge,
        coefficients=coefficients,
        reference_levels=references,
        group_variance=float(np.asarray(fitted.cov_re)[0, 0]),
        warnings=messages,
    )


def _fixed_effects(factors: list[str]) -> str:
    """The fixed part: valence crossed with the kept factors, plus EE."""
    valence = f"C(valence, Treatment({VALENCE_REFERENCE!r}))"
    return f"update ~ {' * '.join([valence, *factors])} + ee"


def _formula(factors: list[str], notes: list[str]) -> str:
    """The whole model as reported, with a note on each dropped factor."""
    formula = f"{_fixed_effects(factors)} + (1 | participant)"
    if notes:
        formula += f"  [{'; '.join(notes)}]"
    return formula


def _failed(formula: str, reason: str, n_obs: int = 0, n_groups: int = 0) -> MixedModelResult:
    return MixedModelResult(
        formula=formula,
        n_obs=n_obs,
        n_groups=n_groups,
        converged=False,
        coefficients=_empty_coefficients(),
        reason=reason,
    )
