"""Score and summary endpoints."""

import math
from typing import Any

import pandas as pd
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from scoring.group import group_summary, mixed_model
from scoring.metrics import SCORE_VERSION
from scoring.models import Score
from scoring.selectors import trials_frame
from trials.api.access import ResearcherView

SCORE_EXPORT_PREFIX = (
    "study",
    "participant",
    "arm",
    "timepoint",
    "session",
    "score_version",
    "status",
)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def study_score_rows(*, study_id: int, slug: str) -> list[dict[str, Any]]:
    """One dict per scored session of the study, in export column order."""
    scores = (
        Score.objects.filter(session__participant__study_id=study_id, score_version=SCORE_VERSION)
        .select_related("session__participant__arm", "session__timepoint")
        .order_by("session_id")
    )
    rows = []
    for score in scores:
        session = score.session
        rows.append(
            {
                "study": slug,
                "participant": session.participant_id,
                "arm": session.participant.arm.code,
                "timepoint": session.timepoint.label,
                "session": session.pk,
                "score_version": score.score_version,
                "status": score.status,
                **score.values,
                "flags": ";".join(score.flags),
                "scored_at": score.scored_at.isoformat() if score.scored_at else None,
            }
        )
    return rows


class ScoreListView(ResearcherView):
    @extend_schema(operation_id="study_scores", responses={200: dict})
    def get(self, request: Request, slug: str) -> Response:
        study = self.study_for(request, slug)
        rows = study_score_rows(study_id=study.pk, slug=study.slug)
        return Response({"results": [{k: _json_safe(v) for k, v in r.items()} for r in rows]})


class SummaryView(ResearcherView):
    @extend_schema(
        operation_id="study_summary",
        parameters=[
            OpenApiParameter("model", bool, description="fit the mixed model (default true)")
        ],
        responses={200: dict},
    )
    def get(self, request: Request, slug: str) -> Response:
        study = self.study_for(request, slug)
        rows = [
            r for r in study_score_rows(study_id=study.pk, slug=study.slug) if r["status"] == "done"
        ]
        scores = pd.DataFrame(rows)
        groups = group_summary(scores) if not scores.empty else pd.DataFrame()
        body: dict[str, Any] = {
            "score_version": SCORE_VERSION,
            "n_sessions": len(rows),
            "groups": [
                {k: _json_safe(v) for k, v in g.items()} for g in groups.to_dict(orient="records")
            ],
        }
        if request.query_params.get("model", "true").lower() not in {"0", "false", "no"}:
            session_ids = [r["session"] for r in rows]
            result = mixed_model(trials_frame(session_ids=session_ids)) if session_ids else None
            body["mixed_model"] = (
                {
                    "formula": result.formula,
                    "n_obs": result.n_obs,
                    "n_groups": result.n_groups,
                    "converged": result.converged,
                    "reason": result.reason,
                    "coefficients": [
                        {k: _json_safe(v) for k, v in c.items()}
                        for c in result.coefficients.to_dict(orient="records")
                    ],
                }
                if result is not None
                else {"reason": "no scored sessions", "coefficients": []}
            )
        return Response(body)
