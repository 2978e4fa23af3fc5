"""Researcher API of instruments: what a study gives, clinician ratings, the exports."""

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from instruments.exports import instrument_scores_query, questionnaires_query
from instruments.selectors import study_instruments
from instruments.services import rating_save
from trials.access import Role
from trials.api.access import ResearcherView
from trials.api.exporting import ExportView, export_schema
from trials.api.participant import ERROR, as_api_error
from trials.api.researcher import ERRORS
from trials.exports import Query
from trials.services.errors import ServiceError


class InstrumentsOut(serializers.Serializer[Any]):
    timepoints = serializers.ListField(
        child=serializers.DictField(),
        help_text="Per timepoint (visit order): {timepoint, instruments: [{code, version, kind, "
        "position, name, source, licence, items: [{code, text, options | min, max, required, "
        "reverse, scored}]}]}.",
    )


class InstrumentsView(ResearcherView):
    """The instruments attached to the study, per timepoint (every role)."""

    @extend_schema(operation_id="study_instruments", responses={200: InstrumentsOut, **ERRORS})
    def get(self, request: Request, slug: str) -> Response:
        study = self.study_for(request, slug)
        return Response({"timepoints": study_instruments(study=study)})


class RatingIn(serializers.Serializer[Any]):
    participant = serializers.IntegerField(help_text="The exports' `participant` id.")
    timepoint = serializers.CharField(help_text="Timepoint label.")
    instrument = serializers.CharField(help_text="A clinician-rated instrument's code (madrs).")
    items = serializers.DictField(
        child=serializers.IntegerField(), help_text="{item code: value}, every required item."
    )
    rated_at = serializers.DateTimeField(required=False, help_text="ISO 8601; default now.")


class RatingOut(serializers.Serializer[Any]):
    participant = serializers.IntegerField()
    timepoint = serializers.CharField()
    instrument = serializers.CharField()
    items = serializers.DictField(child=serializers.IntegerField(allow_null=True))
    rated_at = serializers.DateTimeField()
    created = serializers.BooleanField(help_text="false: an edit (old values in the audit log).")
    total = serializers.FloatField(allow_null=True)
    status = serializers.CharField()


class RatingView(ResearcherView):
    """Enter or edit a clinician-rated instrument (owner or analyst, write scope)."""

    min_role = Role.ANALYST
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="rating_save",
        request=RatingIn,
        responses={201: RatingOut, 200: RatingOut, 409: ERROR, **ERRORS},
        description="Every item is checked (unknown items, values outside the options, a "
        "required item missing: 400, nothing stored). A rating for a timepoint the participant "
        "has not reached is refused (409). Posting again for the same participant, timepoint "
        "and instrument edits the rating; the previous values stay in the audit log.",
    )
    def post(self, request: Request, slug: str) -> Response:
        from instruments.definition import INSTRUMENT_SCORE_VERSION
        from instruments.models import InstrumentScore, ItemAnswer

        study = self.study_for(request, slug)
        body = request.data if isinstance(request.data, dict) else {}
        try:
            rating, created = rating_save(
                study=study,
                participant=body.get("participant"),
                timepoint=body.get("timepoint"),
                instrument=body.get("instrument"),
                items=body.get("items"),
                rated_at=body.get("rated_at"),
                actor=request.user,
            )
        except ServiceError as exc:
            raise as_api_error(exc) from None
        items = dict(
            ItemAnswer.objects.filter(
                session_id=rating.session_id, instrument_id=rating.instrument_id
            )
            .order_by("id")
            .values_list("item", "value")
        )
        score = InstrumentScore.objects.filter(
            session_id=rating.session_id,
            instrument_id=rating.instrument_id,
            score_version=INSTRUMENT_SCORE_VERSION,
        ).first()
        out = {
            "participant": rating.session.participant_id,
            "timepoint": rating.session.timepoint.label,
            "instrument": rating.instrument.code,
            "items": items,
            "rated_at": rating.rated_at,
            "created": created,
            "total": score.total if score else None,
            "status": score.status if score else "incomplete",
        }
        return Response(
            RatingOut(out).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class QuestionnaireExportView(ExportView):
    table = "questionnaires"

    def build_query(self, **kwargs: Any) -> Query:
        return questionnaires_query(**kwargs)

    @export_schema(
        "questionnaires_export",
        "One row per answered item (participant or clinician), columns as the codebook's "
        "`questionnaires`.",
    )
    def get(self, request: Request, slug: str) -> Response | StreamingHttpResponse:
        return super().get(request, slug)


class InstrumentScoreExportView(ExportView):
    table = "instrument-scores"

    def build_query(self, **kwargs: Any) -> Query:
        return instrument_scores_query(**kwargs)

    @export_schema(
        "instrument_scores_export",
        "One row per (participant, timepoint, instrument) scored, then one subscale_<code> "
        "column per subscale of the study's instruments.",
    )
    def get(self, request: Request, slug: str) -> Response | StreamingHttpResponse:
        return super().get(request, slug)
