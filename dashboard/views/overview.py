"""The study overview, refreshed live by polling its JSON twin, and the data-quality page."""

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.timesince import timesince
from django.utils.translation import gettext as _

from dashboard.access import member_study, permissions_of
from dashboard.forms import FLAG_LABELS
from dashboard.selectors import (
    FUNNEL_STEPS,
    VISIT_STATUSES,
    Overview,
    study_design,
    study_overview,
)
from dashboard.views.common import render_study
from scoring.columns import FLAG_NAMES
from trials.access import role_of
from trials.models import Study

POLL_SECONDS = 5


def _when(moment: Any) -> str:
    if moment is None:
        return "—"
    return date_format(timezone.localtime(moment), "SHORT_DATETIME_FORMAT")


def _ago(moment: Any) -> str:
    if moment is None:
        return "—"
    return _("%(time)s ago") % {"time": timesince(moment)}


def overview_payload(study: Study, overview: Overview, can_see_data: bool) -> dict[str, Any]:
    """The overview as JSON: the page's script redraws its tables from this."""
    payload: dict[str, Any] = {
        "generated_at": overview.generated_at.isoformat(),
        "generated_display": _when(overview.generated_at),
        "status": study.status,
        "totals": overview.totals,
        "withdrawn": overview.withdrawn,
        "last_activity": _ago(overview.last_activity),
        "flag_totals": overview.flag_totals,
        "rows": [
            {
                "key": f"{r['arm_id']}-{r['timepoint_id']}",
                **{k: r[k] for k in (*FUNNEL_STEPS, "in_progress", "failed")},
            }
            for r in overview.rows
        ],
        "visits": [
            {
                "key": f"{r['arm_id']}-{r['timepoint_id']}",
                **{k: r[k] for k in (*VISIT_STATUSES, "due_today")},
            }
            for r in overview.visits
        ],
        "opening_count": len(overview.opening_today),
        "opening_more": overview.opening_more,
    }
    if can_see_data:
        payload["in_progress"] = [
            {
                "participant": f"P{r['participant_id']}",
                "url": reverse("dashboard:participant", args=[study.slug, r["participant_id"]]),
                "arm": r["participant__arm__name"],
                "timepoint": r["timepoint__label"],
                "percent": r["percent"],
                "steps": f"{r['step_index']}/{r['steps_total']}",
                "last_activity": _ago(r["last_activity_at"]),
            }
            for r in overview.in_progress
        ]
        payload["opening_today"] = [
            {
                "participant": f"P{r['participant_id']}",
                "url": reverse("dashboard:participant", args=[study.slug, r["participant_id"]]),
                "arm": r["arm"],
                "timepoint": r["timepoint"],
                "opens_at": _when(r["opens_at"]),
                "closes_at": _when(r["closes_at"]) if r["closes_at"] else _("never"),
                "open_now": r["open_now"],
            }
            for r in overview.opening_today
        ]
    return payload


@login_required
def overview_view(request: HttpRequest, slug: str) -> HttpResponse:
    study = member_study(request.user, slug)
    design = study_design(study=study)
    overview = study_overview(study=study, design=design)
    can_see_data = permissions_of(role_of(study))["can_see_data"]
    return render_study(
        request,
        "dashboard/overview.html",
        study,
        "overview",
        {
            "design": design,
            "overview": overview,
            "steps": FUNNEL_STEPS,
            "visit_columns": (*VISIT_STATUSES, "due_today"),
            "flag_labels": FLAG_LABELS,
            "live": {
                "url": reverse("dashboard:overview-json", args=[study.slug]),
                "every_ms": POLL_SECONDS * 1000,
            },
            "payload": overview_payload(study, overview, can_see_data),
        },
    )


@login_required
def overview_json_view(request: HttpRequest, slug: str) -> JsonResponse:
    study = member_study(request.user, slug)
    design = study_design(study=study)
    overview = study_overview(study=study, design=design)
    payload = overview_payload(study, overview, permissions_of(role_of(study))["can_see_data"])
    response = JsonResponse(payload)
    response["Cache-Control"] = "no-store"
    return response


@login_required
def quality_view(request: HttpRequest, slug: str) -> HttpResponse:
    """The scoring flags as counts per arm x timepoint (links to the sessions for analysts)."""
    study = member_study(request.user, slug)
    design = study_design(study=study)
    overview = study_overview(study=study, design=design)
    return render_study(
        request,
        "dashboard/quality.html",
        study,
        "quality",
        {
            "overview": overview,
            "flags": [(name, FLAG_LABELS[name]) for name in FLAG_NAMES],
            "flag_labels": FLAG_LABELS,
        },
    )
