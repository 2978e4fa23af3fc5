"""Score and summary endpoints of the researcher API."""

import math
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from belief_web.errors import ApiError
from scoring.columns import SCORE_VERSION
from scoring.models import Score
from trials.api.access import ResearcherView
from trials.api.exporting import ExportView, export_schema
from trials.api.participant import ERROR
from trials.exports import Query, scores_query

TRUE_WORDS = {"1", "true", "yes"}
FALSE_WORDS = {"0", "false", "no"}


def _json_safe(value: Any) -> Any:
    if hasattr(value, "item"):  # NumPy scalars
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


class ScoreExportView(ExportView):
    """One row per scored session (current score version); viewers see only the summary."""

    table = "scores"

    def build_query(self, **kwargs: Any) -> Query:
        return scores_query(score_version=SCORE_VERSION, **kwargs)

    @export_schema(
        "scores_export",
        "One row per session with a score of the current version (pending, done or failed); "
        "columns as the codebook's `scores` (DESIGN.md order, then extra model figures).",
    )
    def get(self, request: Request, slug: str) -> Response | StreamingHttpResponse:
        return super().get(request, slug)


class MixedModelOut(serializers.Serializer[Any]):
    formula = serializers.CharField()
    n_obs = serializers.IntegerField()
    n_groups = serializers.IntegerField()
    converged = serializers.BooleanField()
    reason = serializers.CharField()
    reference_levels = serializers.DictField(child=serializers.CharField())
    coefficients = serializers.ListField(child=serializers.DictField())


class SummaryOut(serializers.Serializer[Any]):
    score_version = serializers.IntegerField()
    n_sessions = serializers.IntegerField()
    groups = serializers.ListField(
        child=serializers.DictField(),
        help_text="Per arm x timepoint: n_sessions and the mean and SEM of update_good, "
        "update_bad, update_bias, alpha_good, alpha_bad, m1_lr_good, m1_lr_bad.",
    )
    mixed_model = MixedModelOut(required=False)


def _covariates(request: Request, study_id: int) -> Any:
    """The participant covariates asked for (?covariates=age,education_years), or None."""
    from instruments.selectors import COVARIATE_ITEMS, participant_covariates

    raw = request.query_params.get("covariates", "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = sorted(set(names) - set(COVARIATE_ITEMS))
    if unknown:
        raise ApiError(
            status_code=400,
            code="invalid",
            message=f"Unknown covariate(s): {', '.join(unknown)}.",
            fields={"covariates": [f"Any of: {', '.join(COVARIATE_ITEMS)}."]},
        )
    if not names:
        return None
    return participant_covariates(study_id=study_id)[names]


class SummaryView(ResearcherView):
    """Group level (PROTOCOL.md): every role, viewers included."""

    query_params = frozenset({"model", "covariates"})

    @extend_schema(
        operation_id="study_summary",
        parameters=[
            OpenApiParameter("model", bool, description="fit the mixed model (default true)"),
            OpenApiParameter(
                "covariates",
                str,
                description="comma-separated participant covariates of the mixed model, from "
                "the demographics questionnaire: age, education_years",
            ),
        ],
        responses={200: SummaryOut, 400: ERROR, 401: ERROR, 404: ERROR, 429: ERROR},
    )
    def get(self, request: Request, slug: str) -> Response:
        # pandas and SciPy load with the first summary, not with every worker.
        import pandas as pd

        from scoring.group import group_summary, mixed_model
        from scoring.selectors import trials_frame

        study = self.study_for(request, slug)
        fit = request.query_params.get("model", "true").lower()
        if fit not in TRUE_WORDS | FALSE_WORDS:
            raise ApiError(
                status_code=400,
                code="invalid",
                message="model must be true or false.",
                fields={"model": ["Must be true or false."]},
            )
        covariates = _covariates(request, study.pk)
        scores = list(
            Score.objects.filter(
                session__participant__study=study,
                score_version=SCORE_VERSION,
                status=Score.Status.DONE,
            )
            .select_related("session__participant__arm", "session__timepoint")
            .order_by("session_id")
        )
        frame = pd.DataFrame(
            [
                {
                    "session": s.session_id,
                    "arm": s.session.participant.arm.code,
                    "timepoint": s.session.timepoint.label,
                    **s.values,
                }
                for s in scores
            ]
        )
        groups = group_summary(frame) if not frame.empty else pd.DataFrame()
        body: dict[str, Any] = {
            "score_version": SCORE_VERSION,
            "n_sessions": len(scores),
            "groups": [
                {k: _json_safe(v) for k, v in g.items()} for g in groups.to_dict(orient="records")
            ],
        }
        if fit in TRUE_WORDS:
            session_ids = [s.session_id for s in scores]
            if session_ids:
                result = mixed_model(
                    trials_frame(session_ids=session_ids), covariates=covariates
                ).to_dict()
                body["mixed_model"] = {
                    k: result[k]
                    for k in (
                        "formula",
                        "n_obs",
                        "n_groups",
                        "converged",
                        "reason",
                        "reference_levels",
                        "coefficients",
                    )
                }
            else:
                body["mixed_model"] = {
                    "formula": "",
                    "n_obs": 0,
                    "n_groups": 0,
                    "converged": False,
                    "reason": "no scored sessions",
                    "reference_levels": {},
                    "coefficients": [],
                }
        return Response(body)
