"""The whole group level of a study, computed in one place (PROTOCOL.md, "Group level, version 2").

``group_analysis`` is what the command line's ``summary``, the Celery task behind the
dashboard's results page and the summary API all use: the group summary, the mixed
model, the hierarchical fits, random-effects model selection and reliability, with the
same reference levels (scoring.group.factor_levels). From a notebook::

    from scoring.analysis import group_analysis
    result = group_analysis(trials, arm_order=["controls", "patients"])
    result.mixed_model.coefficients

Pure: no Django import.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from common.scalars import json_scalar
from scoring.bms import group_bms
from scoring.fitting import MODELS
from scoring.group import (
    GROUP_KEYS,
    MixedModelResult,
    attach_session_attributes,
    factor_levels,
    group_summary,
    mixed_model,
)
from scoring.hierarchical import HierarchicalFit, hierarchical_fit
from scoring.metrics import LR_MAX_DEFAULT
from scoring.pipeline import score_all
from scoring.reliability import retest_icc, split_half

DOCUMENT_KEYS: Final = (
    "group_summary",
    "mixed_model",
    "model_selection",
    "reliability",
    "test_retest",
    "hierarchical",
)


@dataclass(frozen=True)
class GroupAnalysis:
    """Every group-level result of one data set."""

    summary: pd.DataFrame
    mixed_model: MixedModelResult
    hierarchical: HierarchicalFit
    model_selection: list[dict[str, object]]
    reliability: list[dict[str, object]]
    reliability_reason: str
    test_retest: list[dict[str, object]]
    reference_levels: dict[str, str]
    level_source: str

    def to_dict(self) -> dict[str, object]:
        """The JSON document of DESIGN.md's ``summary --json`` (and of the stored fit)."""
        groups = [
            {str(k): json_scalar(v) for k, v in record.items()}
            for record in self.summary.to_dict(orient="records")
        ]
        return {
            "reference_levels": dict(self.reference_levels),
            "reference_levels_from": self.level_source,
            "group_summary": groups,
            "mixed_model": self.mixed_model.to_dict(),
            "model_selection": self.model_selection,
            "reliability": self.reliability,
            "reliability_reason": self.reliability_reason,
            "test_retest": self.test_retest,
            "hierarchical": {
                "groups": self.hierarchical.groups_records(),
                "converged": self.hierarchical.converged,
                "lr_max": self.hierarchical.lr_max,
            },
        }

    def to_json(self) -> str:
        """to_dict as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)


def _ordered(frame: pd.DataFrame, arms: Sequence[str], timepoints: Sequence[str]) -> pd.DataFrame:
    """Rows sorted by the arms' then the timepoints' order (unknown levels last)."""
    if frame.empty:
        return frame
    arm_rank = {a: i for i, a in enumerate(arms)}
    tp_rank = {t: i for i, t in enumerate(timepoints)}
    key = pd.DataFrame(
        {
            "a": [arm_rank.get(str(v), len(arm_rank)) for v in frame["arm"]],
            "t": [tp_rank.get(str(v), len(tp_rank)) for v in frame["timepoint"]],
        },
        index=frame.index,
    )
    order = key.sort_values(["a", "t"], kind="mergesort").index
    return frame.loc[order].reset_index(drop=True)


def model_selection(
    scores: pd.DataFrame, arms: Sequence[str], timepoints: Sequence[str]
) -> list[dict[str, object]]:
    """Random-effects BMS of M0, M1, M2 per arm x timepoint from log evidence -BIC/2.

    Sessions without a model comparison (no best_model: no valid trial, or too
    few for one under score version 2) are left out.
    """
    out: list[dict[str, object]] = []
    compared = scores["best_model"].map(lambda m: isinstance(m, str) and m != "")
    for arm in arms:
        for timepoint in timepoints:
            mask = (scores["arm"].astype(str) == arm) & (
                scores["timepoint"].astype(str) == timepoint
            )
            if not mask.any():
                continue
            rows = scores.loc[mask & compared]
            bic = rows[[f"{m.lower()}_bic" for m in MODELS]].to_numpy(dtype=np.float64)
            result = group_bms(-0.5 * bic, MODELS)
            out.append(
                {
                    "arm": arm,
                    "timepoint": timepoint,
                    **{k: _json_list(v) for k, v in result.to_dict().items()},
                }
            )
    return out


def _json_list(value: object) -> object:
    if isinstance(value, list):
        return [json_scalar(v) for v in value]
    return json_scalar(value)


def covariate_models(
    trials: pd.DataFrame,
    covariates: pd.DataFrame,
    *,
    arm_order: Sequence[str] | None = None,
    timepoint_order: Sequence[str] | None = None,
) -> dict[str, dict[str, object]]:
    """The mixed model with every non-empty combination of the covariates' columns.

    Keyed by the columns joined with '+', in the columns' order (a server stores them
    all with its group fit, so that asking for covariates never fits in a request).
    """
    names = [str(c) for c in covariates.columns]
    out: dict[str, dict[str, object]] = {}
    for size in range(1, len(names) + 1):
        for subset in itertools.combinations(names, size):
            out["+".join(subset)] = mixed_model(
                trials,
                arm_order=arm_order,
                timepoint_order=timepoint_order,
                covariates=covariates.loc[:, list(subset)],
            ).to_dict()
    return out


def group_analysis(
    trials: pd.DataFrame,
    *,
    arm_order: Sequence[str] | None = None,
    timepoint_order: Sequence[str] | None = None,
    covariates: pd.DataFrame | None = None,
    random_slope: bool = False,
    scores: pd.DataFrame | None = None,
    lr_max: float = LR_MAX_DEFAULT,
) -> GroupAnalysis:
    """Every group-level figure of the trials (one row per session x event).

    The trials need participant, arm and timepoint (and block1_position for
    split-half reliability). ``scores``, indexed by session, saves re-scoring
    when the caller has them; they must be of the same trials. Raises
    ValueError when a level of the data is missing from a given order. ``lr_max``
    bounds the learning rates of the fits (the study's setting).
    """
    for key in ("participant", *GROUP_KEYS):
        if key not in trials.columns:
            raise ValueError(f"trials lack column {key!r}")
    per_session = scores if scores is not None else score_all(trials, lr_max=lr_max)
    per_session = attach_session_attributes(per_session, trials)
    arms = factor_levels(per_session["arm"].dropna(), arm_order, "arm")
    timepoints = factor_levels(per_session["timepoint"].dropna(), timepoint_order, "timepoint")
    summary = _ordered(group_summary(per_session), arms, timepoints)
    model = mixed_model(
        trials,
        arm_order=arms,
        timepoint_order=timepoints,
        covariates=covariates,
        random_slope=random_slope,
    )
    hierarchical = hierarchical_fit(trials, lr_max=lr_max)
    hierarchical = dataclasses.replace(
        hierarchical, groups=_ordered(hierarchical.groups, arms, timepoints)
    )
    reason = ""
    try:
        reliability = split_half(trials, arm_order=arms, timepoint_order=timepoints)
    except ValueError as error:
        reliability, reason = [], str(error)
    given = arm_order is not None or timepoint_order is not None
    references = {"valence": "bad"}
    if arms:
        references["arm"] = arms[0]
    if timepoints:
        references["timepoint"] = timepoints[0]
    return GroupAnalysis(
        summary=summary,
        mixed_model=model,
        hierarchical=hierarchical,
        model_selection=model_selection(per_session, arms, timepoints),
        reliability=reliability,
        reliability_reason=reason,
        test_retest=retest_icc(per_session, timepoint_order=timepoints),
        reference_levels=references,
        level_source="given order" if given else "sorted",
    )


def _format(value: object) -> str:
    if value is None:
        return "NA"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def analysis_to_text(analysis: GroupAnalysis) -> str:
    """The whole group level as a plain-text report."""
    parts = [
        f"Reference levels ({analysis.level_source}; set them with --arm-order and "
        f"--timepoint-order): "
        + ", ".join(f"{k} = {v}" for k, v in analysis.reference_levels.items()),
        "",
        "Group summary (mean and SEM per arm x timepoint)",
    ]
    summary = analysis.summary
    if summary.empty:
        parts.append("  no sessions")
    else:
        table = summary.copy()
        labels = [f"{a} / {t}" for a, t in zip(table["arm"], table["timepoint"], strict=True)]
        table = table.drop(columns=["arm", "timepoint"])
        table.index = pd.Index(labels, name="arm / timepoint")
        parts.append(table.T.to_string(float_format=lambda v: f"{v:.4g}"))
    model = analysis.mixed_model
    parts += ["", "Linear mixed model (REML; t tests with Satterthwaite df)", f"  {model.formula}"]
    if model.reason:
        parts.append(f"  not fitted: {model.reason}")
    else:
        parts.append(
            f"  observations {model.n_obs}, participants {model.n_groups}, "
            f"converged {'yes' if model.converged else 'NO'}"
        )
        parts += [f"  warning: {w}" for w in model.warnings]
        parts.append(model.coefficients.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    parts += ["", "Hierarchical fits: group means (se) and spread (sd) per arm x timepoint"]
    for row in analysis.hierarchical.groups_records():
        parts.append(
            f"  {row['arm']} / {row['timepoint']}  {row['model']} {row['parameter']}: "
            f"{_format(row['mean'])} ({_format(row['se'])}), sd {_format(row['sd'])}, "
            f"n {row['n_sessions']}"
        )
    parts += ["", "Random-effects model selection (expected frequency / exceedance / protected)"]
    for group in analysis.model_selection:
        models = group["models"]
        assert isinstance(models, list)
        cells = [
            f"{m} {_format(f)}/{_format(e)}/{_format(p)}"
            for m, f, e, p in zip(
                models,
                _as_list(group["expected_frequencies"]),
                _as_list(group["exceedance"]),
                _as_list(group["protected_exceedance"]),
                strict=True,
            )
        ]
        parts.append(
            f"  {group['arm']} / {group['timepoint']} (n {group['n_sessions']}): "
            + "  ".join(cells)
        )
    parts += ["", "Split-half reliability (Spearman-Brown) per arm x timepoint"]
    if analysis.reliability_reason:
        parts.append(f"  not computed: {analysis.reliability_reason}")
    for row in analysis.reliability:
        parts.append(
            f"  {row['arm']} / {row['timepoint']}  {row['measure']}: "
            f"{_format(row['split_half'])} (n {row['n_sessions']})"
        )
    parts += ["", "Test-retest ICC(2,1), pooled over arms"]
    for row in analysis.test_retest:
        pair = _as_list(row["timepoints"])
        parts.append(
            f"  {row['measure']} {pair[0]} - {pair[1]}: {_format(row['icc'])} "
            f"(n {row['n_participants']})"
        )
    return "\n".join(parts) + "\n"


def _as_list(value: object) -> list[object]:
    assert isinstance(value, list)
    return value
