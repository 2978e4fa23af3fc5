"""Results: the paper's figure and its companions (Vega-Lite), and the mixed model."""

import re
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from dashboard.access import member_study, permissions_of
from dashboard.forms import FLAG_LABELS
from dashboard.selectors import study_design, study_results
from dashboard.views.common import render_study
from instruments.selectors import study_change_analysis
from scoring.models import ModelFit
from scoring.selectors import model_fit, scored_fingerprint
from scoring.services import model_fit_request
from trials.access import role_of

_FACTOR = re.compile(r"C\((\w+), Treatment\('([^']*)'\)\)\[T\.([^\]]*)\]")


def term_label(term: str) -> str:
    """'C(valence, Treatment('bad'))[T.good]:ee' -> 'valence good (vs bad) × ee'."""
    return " × ".join(
        _FACTOR.sub(lambda m: f"{m.group(1)} {m.group(3)} ({_('vs')} {m.group(2)})", part)
        for part in term.split(":")
    )


def model_payload(fit: ModelFit | None, fingerprint: str) -> dict[str, Any]:
    """The stored group fit as the page shows it; `fresh` when it describes the current data."""
    if fit is None:
        return {"status": "none", "fresh": False, "coefficients": [], "group": {}}
    result = fit.result or {}
    # A row stored before the group analysis held the mixed model alone.
    model = result.get("mixed_model", result)
    return {
        "status": fit.status,
        "fresh": fit.fingerprint == fingerprint,
        "fitted_at": date_format(timezone.localtime(fit.fitted_at), "SHORT_DATETIME_FORMAT")
        if fit.fitted_at
        else None,
        "n_sessions": fit.n_sessions,
        "formula": model.get("formula", ""),
        "n_obs": model.get("n_obs"),
        "n_groups": model.get("n_groups"),
        "converged": model.get("converged"),
        "reason": model.get("reason", ""),
        "warnings": model.get("warnings", []),
        "reference_levels": model.get("reference_levels", {}),
        "coefficients": [
            {**row, "label": term_label(str(row.get("term", "")))}
            for row in model.get("coefficients", [])
        ],
        "group": {
            "model_selection": result.get("model_selection", []),
            "reliability": result.get("reliability", []),
            "test_retest": result.get("test_retest", []),
            "hierarchical": result.get("hierarchical", {}).get("groups", []),
        },
    }


def _labels() -> dict[str, str]:
    return {
        "update": _("Mean update (percentage points)"),
        "good": _("good news"),
        "bad": _("bad news"),
        "valence": _("News"),
        "timepoint": _("Timepoint"),
        "arm": _("Arm"),
        "update_bias": _("Update bias (good − bad)"),
        "update_bias_ee": _("Update bias controlled for EE"),
        "good_minus_bad": _("good − bad"),
        "sessions": _("Sessions"),
        "lr_good": _("LR good news (M1)"),
        "lr_bad": _("LR bad news (M1)"),
        "share": _("Share of sessions"),
        "model": _("Best model (BIC)"),
        "group": _("Group"),
        "sem": _("SEM"),
        "n": _("n"),
        "participant": _("Participant"),
        "svg": _("Save as SVG"),
        "d_madrs": _("Change in MADRS total since the first visit"),
        "change": _("Change since the first visit"),
        "measure": _("Measure"),
        "png": _("Save as PNG (3×)"),
    }


@login_required
def results_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Every chart's data in one json_script block; the mixed model from its stored fit."""
    study = member_study(request.user, slug)
    per_session = permissions_of(role_of(study))["can_see_data"]
    design = study_design(study=study)
    results = study_results(study=study, design=design, per_session=per_session)
    fit = model_fit(study=study)
    model = model_payload(fit, results.fingerprint)
    change = study_change_analysis(study_id=study.pk, points=per_session)
    chart_data = {
        "labels": _labels(),
        "timepoints": [t.label for t in design.timepoints],
        "arms": [a.name for a in design.arms],
        "main": results.main,
        "bias_bins": results.bias_bins,
        "bias_bin_width": results.bias_bin_width,
        "bias_ee_bins": results.bias_ee_bins,
        "bias_ee_bin_width": results.bias_ee_bin_width,
        "models": results.models,
        "per_session": per_session,
        "lr_points": results.lr_points,
        "trajectories": results.trajectories,
        "trajectory_means": results.trajectory_means,
        "model_url": reverse("dashboard:model-json", args=[study.slug]),
        "n_sessions": results.n_sessions,
        "group": model["group"],
        "change": change,
    }
    return render_study(
        request,
        "dashboard/results.html",
        study,
        "results",
        {
            "results": results,
            "chart_data": chart_data,
            "model": model,
            "flag_labels": FLAG_LABELS,
            "change": change,
        },
    )


@login_required
def model_json_view(request: HttpRequest, slug: str) -> JsonResponse:
    """The mixed model of the current data: stored, or queued now (the page polls this)."""
    study = member_study(request.user, slug)
    _n, fingerprint = scored_fingerprint(study=study)
    fit = model_fit_request(study=study, fingerprint=fingerprint)
    response = JsonResponse(model_payload(fit, fingerprint))
    response["Cache-Control"] = "no-store"
    return response
