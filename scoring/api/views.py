"""Score, summary and rescore endpoints of the researcher API."""

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from common.errors import ApiError
from scoring.columns import SCORE_VERSION
from scoring.exports import scores_query
from trials.access import Role
from trials.api.access import ResearcherView
from trials.api.exporting import ExportView, export_schema
from trials.api.participant import ERROR
from trials.api.researcher import ERRORS
from trials.exports import Query

TRUE_WORDS = {"1", "true", "yes"}
FALSE_WORDS = {"0", "false", "no"}


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
    coefficients = serializers.ListField(
        child=serializers.DictField(),
        help_text="term, estimate, std_error, df (Satterthwaite), t_value, p_value, ci_low, "
        "ci_high: REML, as R's lmerTest.",
    )


class GroupFitOut(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=["none", "fitting", "done", "failed"])
    fresh = serializers.BooleanField(help_text="The stored fit describes the current scores.")
    fitted_at = serializers.DateTimeField(allow_null=True)
    n_sessions = serializers.IntegerField()


class SummaryOut(serializers.Serializer[Any]):
    score_version = serializers.IntegerField()
    n_sessions = serializers.IntegerField()
    groups = serializers.ListField(
        child=serializers.DictField(),
        help_text="Per arm x timepoint: n_sessions and the mean and SEM of update_good, "
        "update_bad, update_bias, update_bias_ee (the update bias controlled for the "
        "estimation error: the coefficient of good news in update ~ 1 + good + EE per "
        "session, score version 2), alpha_good, alpha_bad, m1_lr_good, m1_lr_bad.",
    )
    group_fit = GroupFitOut(
        required=False,
        help_text="The stored group fit the rest reads (the dashboard's): a fit of newer "
        "data is queued when it is not fresh; ask again until status is done.",
    )
    mixed_model = MixedModelOut(required=False)
    model_selection = serializers.ListField(child=serializers.DictField(), required=False)
    reliability = serializers.ListField(child=serializers.DictField(), required=False)
    test_retest = serializers.ListField(child=serializers.DictField(), required=False)
    hierarchical = serializers.ListField(child=serializers.DictField(), required=False)
    change = serializers.DictField(
        help_text="Change from the first visit in the MADRS total against the change in "
        "m1_lr_good, update_good, update_bias (and update_bias_ee in score version 2): "
        "`correlations` per arm x later timepoint x measure (n, pearson_r, pearson_ci_low, "
        "pearson_ci_high, pearson_p, spearman_r, spearman_ci_low, spearman_ci_high, "
        "spearman_p; Fisher z intervals), and `points` (one per participant and later visit, "
        "analysts and owners only)."
    )


GROUP_FIT_PARTS = ("model_selection", "reliability", "test_retest")


def _covariates(request: Request) -> list[str]:
    """The participant covariates asked for (?covariates=age,education_years), in the
    canonical order that names the stored fit's variant."""
    from instruments.selectors import COVARIATE_ITEMS

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
    return [name for name in COVARIATE_ITEMS if name in names]


class SummaryView(ResearcherView):
    """Group level (PROTOCOL.md): every role, viewers included.

    The model parts come from the study's stored group fit (scoring.services'
    model_fit_run, in a Celery task), the same row the results page shows: a request never
    fits the group model itself (200,000 trials took 106 s inside a request once).
    """

    query_params = frozenset({"model", "covariates"})

    @extend_schema(
        operation_id="study_summary",
        parameters=[
            OpenApiParameter(
                "model", bool, description="include the stored group fit (default true)"
            ),
            OpenApiParameter(
                "covariates",
                str,
                description="comma-separated participant covariates of the mixed model, from "
                "the demographics questionnaire: age, education_years (every combination is "
                "part of the stored group fit)",
            ),
        ],
        responses={200: SummaryOut, 400: ERROR, 401: ERROR, 404: ERROR, 429: ERROR},
    )
    def get(self, request: Request, slug: str) -> Response:
        # pandas loads with the first summary (study_group_summary), not with every worker.
        from scoring.selectors import model_fit, scored_fingerprint, study_group_summary
        from scoring.services import model_fit_request

        study = self.study_for(request, slug)
        fit = request.query_params.get("model", "true").lower()
        if fit not in TRUE_WORDS | FALSE_WORDS:
            raise ApiError(
                status_code=400,
                code="invalid",
                message="model must be true or false.",
                fields={"model": ["Must be true or false."]},
            )
        covariates = _covariates(request)
        n_sessions, groups = study_group_summary(study=study)
        body: dict[str, Any] = {
            "score_version": SCORE_VERSION,
            "n_sessions": n_sessions,
            "groups": groups,
        }
        from instruments.selectors import study_change_analysis
        from trials.access import role_at_least, role_of

        # Per-participant points for analysts and owners; viewers get the correlations.
        body["change"] = study_change_analysis(
            study_id=study.pk,
            points=role_at_least(role_of(study), Role.ANALYST),
        )
        if fit in TRUE_WORDS:
            n_scored, fingerprint = scored_fingerprint(study=study)
            stored = (
                model_fit_request(study=study, fingerprint=fingerprint)
                if n_scored
                else model_fit(study=study)
            )
            body.update(_group_fit(stored, fingerprint, covariates))
        return Response(body)


def _group_fit(fit: Any, fingerprint: str, covariates: list[str]) -> dict[str, Any]:
    """The stored group fit's parts for the summary, with its state.

    With covariates, the mixed model is the stored fit's variant with exactly those.
    """
    if fit is None or not fit.result:
        state = {"status": "none" if fit is None else fit.status, "fresh": False}
        return {
            "group_fit": {**state, "fitted_at": None, "n_sessions": 0},
            "mixed_model": {
                "formula": "",
                "n_obs": 0,
                "n_groups": 0,
                "converged": False,
                "reason": "no scored sessions" if fit is None else "fitting: ask again shortly",
                "reference_levels": {},
                "coefficients": [],
            },
            **{part: [] for part in GROUP_FIT_PARTS},
            "hierarchical": [],
        }
    result = fit.result
    model = result.get("mixed_model", result)
    if covariates:
        variants = result.get("covariate_models", {})
        model = variants.get("+".join(covariates)) or {
            "reason": f"no participant has {' and '.join(covariates)} (demographics)"
            if "covariate_models" in result
            else "fitting: ask again shortly",
            "coefficients": [],
        }
    return {
        "group_fit": {
            "status": fit.status,
            "fresh": fit.fingerprint == fingerprint,
            "fitted_at": fit.fitted_at.isoformat() if fit.fitted_at else None,
            "n_sessions": fit.n_sessions,
        },
        "mixed_model": {
            k: model.get(k, default)
            for k, default in (
                ("formula", ""),
                ("n_obs", 0),
                ("n_groups", 0),
                ("converged", False),
                ("reason", ""),
                ("reference_levels", {}),
                ("coefficients", []),
                ("warnings", []),
            )
        },
        **{part: result.get(part, []) for part in GROUP_FIT_PARTS},
        "hierarchical": result.get("hierarchical", {}).get("groups", []),
    }


# ------------------------------------------------------------------------ rescore


class RescoreOut(serializers.Serializer[Any]):
    sessions = serializers.IntegerField(help_text="Completed sessions queued for scoring.")
    score_version = serializers.IntegerField()
    batches = serializers.IntegerField()
    running = serializers.BooleanField(
        help_text="True when this request found a rescore of the study still running and "
        "queued nothing: the counts are that rescore's."
    )
    requested_at = serializers.DateTimeField(help_text="When the rescore answered started.")


RESCORE_BATCH = 200


class RescoreThrottle(SimpleRateThrottle):
    """Rescore requests per researcher: each one re-scores a whole study."""

    scope = "rescore"
    rate = "10/hour"

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}

    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception:  # noqa: BLE001 - the cache is down: a running rescore still dedupes
            return True


class RescoreView(ResearcherView):
    """Re-score every completed session of the study with the current score version.

    Idempotent while a rescore of the study runs (the same 202, `running: true`, nothing
    queued); at most 10 requests per researcher per hour (429 after).
    """

    min_role = Role.ANALYST
    throttle_classes = [RescoreThrottle]

    @extend_schema(
        operation_id="study_rescore",
        request=None,
        responses={202: RescoreOut, 429: ERROR, **ERRORS},
    )
    def post(self, request: Request, slug: str) -> Response:
        # scoring.services, not scoring.metrics: queueing loads no numerical stack
        # (tests/scoring/test_web_imports.py).
        from scoring.services import study_rescore_request

        study = self.study_for(request, slug)
        rescore, started = study_rescore_request(
            study=study, actor=request.user, batch_size=RESCORE_BATCH
        )
        return Response(
            {
                "sessions": rescore.sessions,
                "score_version": SCORE_VERSION,
                "batches": rescore.batches,
                "running": not started,
                "requested_at": rescore.requested_at.isoformat().replace("+00:00", "Z"),
            },
            status=status.HTTP_202_ACCEPTED,
        )
