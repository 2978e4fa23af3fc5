"""Researcher API: studies, participants, sessions, trials, responses, codebook, imports.
Scores, the summary and rescoring live in scoring.api; the shared settings in access.py."""

import logging
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, Prefetch, QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from audit.services import audit_record
from common.errors import ApiError
from trials.access import Role, studies_for_member
from trials.api.access import PAGINATION_PARAMS, ResearcherView
from trials.api.exporting import (
    INCLUDE_PARAM,
    ExportPage,
    ExportView,
    export_format,
    export_schema,
    include_parts,
)
from trials.api.filters import SessionFilter
from trials.api.participant import ERROR, as_api_error
from trials.codebook import CODEBOOK, codebook, codebook_csv
from trials.exports import (
    VISIT_COLUMNS,
    Query,
    csv_cell,
    json_value,
    responses_query,
    trials_query,
)
from trials.models import ImportJob, Participant, Session, Study, StudyEventList
from trials.selectors import participant_visits, study_visit_rows, visit_payload
from trials.services.anchors import participant_anchor_set
from trials.services.errors import FileRejected, ServiceError
from trials.services.import_jobs import import_job_create, import_job_for
from trials.services.imports import IMPORT_MAX_BYTES, OPTIONAL, REQUIRED, trials_import
from trials.visits import VisitStatus

log = logging.getLogger(__name__)

ERRORS = {400: ERROR, 401: ERROR, 403: ERROR, 404: ERROR, 429: ERROR}
IMPORT_DESCRIPTION = (
    f"One row per session x event: {', '.join(REQUIRED)}, and optionally "
    f"{', '.join(OPTIONAL)}. A trials export is accepted as it is (its other columns are "
    "ignored). Any error refuses the whole file, with every error listed."
)


# ----------------------------------------------------------------------- studies


class ArmOut(serializers.Serializer[Any]):
    code = serializers.CharField()
    name = serializers.CharField()


class TimepointOut(serializers.Serializer[Any]):
    order = serializers.IntegerField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.label
    opens_after = serializers.DurationField()
    closes_after = serializers.DurationField(allow_null=True)


class StudyOut(serializers.Serializer[Any]):
    slug = serializers.SlugField()
    title = serializers.CharField()
    description = serializers.CharField()
    title_texts = serializers.DictField(
        child=serializers.CharField(), help_text="The title per language, where it has its own."
    )
    description_texts = serializers.DictField(
        child=serializers.CharField(), help_text="The description per language, likewise."
    )
    status = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices, help_text="Your role in this study.")
    languages = serializers.ListField(child=serializers.CharField())
    scale_min = serializers.IntegerField()
    scale_max = serializers.IntegerField()
    br_mode = serializers.CharField()
    collect_ebr = serializers.BooleanField()
    collect_confidence = serializers.BooleanField()
    memory_test = serializers.BooleanField()
    ratings = serializers.BooleanField()
    min_valid_per_valence = serializers.IntegerField()
    arms = ArmOut(many=True)
    timepoints = TimepointOut(many=True)
    lists = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_lists(self, study: Study) -> list[str]:
        return [link.event_list.name for link in study.study_lists.all()]


def studies_with_details(user: Any) -> QuerySet[Study]:
    """The member's studies with arms, timepoints and lists prefetched (4 queries)."""
    return studies_for_member(user).prefetch_related(
        "arms",
        "timepoints",
        Prefetch("study_lists", queryset=StudyEventList.objects.select_related("event_list")),
    )


class StudyListView(ResearcherView, generics.ListAPIView[Study]):
    """The studies you are a member of, with your role in each."""

    serializer_class = StudyOut
    query_params = PAGINATION_PARAMS

    def get_queryset(self) -> QuerySet[Study]:
        return studies_with_details(self.request.user)

    @extend_schema(operation_id="studies_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)


class StudyDetailView(ResearcherView):
    @extend_schema(operation_id="study_detail", responses={200: StudyOut, **ERRORS})
    def get(self, request: Request, slug: str) -> Response:
        study = studies_with_details(request.user).filter(slug=slug).first()
        if study is None:
            raise ApiError(status_code=404, code="not_found", message="No such study.")
        return Response(StudyOut(study).data)


# ------------------------------------------------------------ participants, sessions


class ParticipantOut(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="Pseudonymous id: the `participant` of exports.")
    arm = serializers.CharField(source="arm.code")
    sequence = serializers.IntegerField(
        help_text="Latin-square row, from 0 (the dashboard shows the same number): timepoint t "
        "(its `order`) gets the list at position (sequence + t) modulo the number of lists."
    )
    language = serializers.CharField()
    imported = serializers.BooleanField()
    n_sessions = serializers.IntegerField()
    consented_at = serializers.DateTimeField(allow_null=True)
    withdrawn_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    external_id = serializers.SerializerMethodField(
        help_text="Only with ?include=external_id (owner, analyst)."
    )

    def get_external_id(self, participant: Participant) -> str | None:
        if not self.context.get("external_id"):
            return None
        identity = getattr(participant, "identity", None)
        return identity.external_id if identity is not None else None

    def to_representation(self, instance: Participant) -> dict[str, Any]:
        data = super().to_representation(instance)
        if not self.context.get("external_id"):
            data.pop("external_id")
        return data


class StudyScopedList(ResearcherView, generics.ListAPIView[Any]):
    """A list of one study's rows: the study is resolved (and the role checked) first."""

    min_role = Role.ANALYST
    study: Study

    def get(self, request: Request, slug: str) -> Response:
        self.study = self.study_for(request, slug)
        return self.list(request)


class ParticipantListView(StudyScopedList):
    serializer_class = ParticipantOut
    query_params = PAGINATION_PARAMS | {"include"}

    def get_queryset(self) -> QuerySet[Participant]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the view
            return Participant.objects.none()
        queryset = (
            Participant.objects.filter(study=self.study)
            .select_related("arm")
            .annotate(n_sessions=Count("sessions"))
        )
        if self.external_id:
            queryset = queryset.select_related("identity")
        return queryset

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "external_id": self.external_id}

    @extend_schema(operation_id="participants_list", parameters=[INCLUDE_PARAM])
    def get(self, request: Request, slug: str) -> Response:
        self.study = self.study_for(request, slug)
        self.external_id = "external_id" in include_parts(request, self.study)
        return self.list(request)


class SessionOut(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="The `session` of exports.")
    participant = serializers.IntegerField(source="participant_id")
    arm = serializers.CharField(source="participant.arm.code")
    timepoint = serializers.CharField(source="timepoint.label")
    list = serializers.CharField(source="event_list.name")
    status = serializers.ChoiceField(choices=Session.Status.choices)
    language = serializers.CharField()
    imported = serializers.BooleanField()
    steps_done = serializers.IntegerField(source="step_index")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    last_activity_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)


class SessionListView(StudyScopedList):
    serializer_class = SessionOut
    filterset_class = SessionFilter
    query_params = PAGINATION_PARAMS

    def get_queryset(self) -> QuerySet[Session]:
        if getattr(self, "swagger_fake_view", False):
            return Session.objects.none()
        return Session.objects.filter(participant__study=self.study).select_related(
            "participant__arm", "timepoint", "event_list"
        )

    @extend_schema(operation_id="sessions_list")
    def get(self, request: Request, slug: str) -> Response:
        return super().get(request, slug)


# ------------------------------------------------------------------------ exports


class TrialExportView(ExportView):
    table = "trials"

    def build_query(self, **kwargs: Any) -> Query:
        return trials_query(**kwargs)

    @export_schema(
        "trials_export",
        "One row per (session, event), columns as the codebook's `trials` (DESIGN.md order).",
    )
    def get(self, request: Request, slug: str) -> Response | StreamingHttpResponse:
        return super().get(request, slug)


class ResponseExportView(ExportView):
    table = "responses"

    def build_query(self, **kwargs: Any) -> Query:
        return responses_query(**kwargs)

    @export_schema("responses_export", "One row per stored response (the raw log).")
    def get(self, request: Request, slug: str) -> Response | StreamingHttpResponse:
        return super().get(request, slug)


class CodebookEntry(serializers.Serializer[Any]):
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["text", "integer", "number", "boolean", "datetime"])
    unit = serializers.CharField()
    meaning = serializers.CharField()


# One list of columns per export, named as CODEBOOK names them ("instrument-scores" is not
# a Python name, so the class is built from the dict rather than written out).
CodebookOut = type(
    "CodebookOut",
    (serializers.Serializer,),
    {table: CodebookEntry(many=True) for table in CODEBOOK},
)


class CodebookView(ResearcherView):
    query_params = frozenset({"format"})

    @extend_schema(
        operation_id="codebook",
        parameters=[OpenApiParameter("format", str, enum=["json", "csv"])],
        responses={
            (200, "application/json"): CodebookOut,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR),
            **ERRORS,
        },
    )
    def get(self, request: Request, slug: str) -> Response | HttpResponse:
        study = self.study_for(request, slug)
        if export_format(request, ("json", "csv")) == "csv":
            response = HttpResponse(codebook_csv(), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{study.slug}-codebook.csv"'
            return response
        return Response(codebook())


# ------------------------------------------------------------------------- writes


class ImportRowError(serializers.Serializer[Any]):
    row = serializers.IntegerField()
    column = serializers.CharField()
    message = serializers.CharField()


class ImportOut(serializers.Serializer[Any]):
    participants = serializers.IntegerField(help_text="Participants created.")
    sessions = serializers.IntegerField()
    trials = serializers.IntegerField()
    responses = serializers.IntegerField()
    session_ids = serializers.ListField(child=serializers.IntegerField())


class ImportErrorOut(serializers.Serializer[Any]):
    code = serializers.CharField(
        help_text="invalid_file (rows lists every error by place), import_conflict, timeout, "
        "import_failed, server_error."
    )
    message = serializers.CharField()
    fields = serializers.DictField()  # type: ignore[assignment]  # a field, not Serializer.fields
    rows = ImportRowError(many=True, required=False)


class ImportProgressOut(serializers.Serializer[Any]):
    done = serializers.IntegerField(help_text="Rows checked so far.")
    total = serializers.IntegerField(allow_null=True, help_text="Rows in the file, once read.")


class ImportJobOut(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    state = serializers.ChoiceField(
        choices=ImportJob.State.choices,
        help_text="queued, running (poll again), done (result) or failed (error; nothing was "
        "stored).",
    )
    status_url = serializers.URLField(help_text="This document's URL: GET it to poll.")
    size = serializers.IntegerField(help_text="Bytes of the file.")
    progress = ImportProgressOut()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    result = ImportOut(allow_null=True, help_text="Once done: the synchronous import's answer.")
    error = ImportErrorOut(
        allow_null=True,
        help_text="Once failed: the synchronous import's error (the `error` of its body).",
    )


def import_job_payload(request: Request, job: ImportJob) -> dict[str, Any]:
    url = request.build_absolute_uri(
        reverse("api-import-job", kwargs={"slug": job.study.slug, "job_id": str(job.pk)})
    )
    return {
        "id": str(job.pk),
        "state": job.state,
        "status_url": url,
        "size": job.size,
        "progress": {"done": job.rows_checked, "total": job.rows_total},
        "created_at": json_value(job.created_at),
        "started_at": json_value(job.started_at),
        "finished_at": json_value(job.finished_at),
        "result": job.result,
        "error": job.error,
    }


# Seconds a client waits before polling an unfinished import again (Retry-After).
IMPORT_POLL_S = 2

_POLL_HEADERS = [
    OpenApiParameter(
        "Location",
        OpenApiTypes.URI,
        OpenApiParameter.HEADER,
        response=[202],
        description="The import's status URL.",
    ),
    OpenApiParameter(
        "Retry-After",
        OpenApiTypes.INT,
        OpenApiParameter.HEADER,
        response=[202],
        description="Seconds to wait before polling.",
    ),
]


class ImportIn(serializers.Serializer[Any]):
    file = serializers.FileField()


class ImportView(ResearcherView):
    """POST a trial-level CSV (multipart `file`, or a text/csv body)."""

    min_role = Role.ANALYST
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="trials_import",
        request={"multipart/form-data": ImportIn, "text/csv": OpenApiTypes.STR},
        parameters=_POLL_HEADERS,
        responses={
            201: ImportOut,
            202: OpenApiResponse(
                ImportJobOut,
                description="A file over IMPORT_ASYNC_BYTES (2 MB): accepted and queued for a "
                "worker. Poll `status_url` (also the Location header) until `state` is done "
                "or failed.",
            ),
            413: ERROR,
            415: ERROR,
            409: ERROR,
            **ERRORS,
        },
        description=IMPORT_DESCRIPTION
        + " Files up to 2 MB answer in the request (201, or the error); larger ones (up to "
        "20 MB) answer 202 with a status URL to poll, whose `result` or `error` has the same "
        "shape as the 201 body or the error's `error`.",
    )
    def post(self, request: Request, slug: str) -> Response:
        study = self.study_for(request, slug)
        data = self._read_file(request)
        if len(data) > settings.IMPORT_ASYNC_BYTES:
            job = import_job_create(study=study, data=data, actor=request.user)
            job.study = study
            body = import_job_payload(request, job)
            return Response(
                body,
                status=status.HTTP_202_ACCEPTED,
                headers={"Location": body["status_url"], "Retry-After": str(IMPORT_POLL_S)},
            )
        try:
            result = trials_import(study=study, data=data, actor=request.user)
        except FileRejected as exc:
            raise ApiError(
                status_code=400,
                code="invalid_file",
                message=exc.message,
                extra={"rows": [e.as_dict() for e in exc.errors]},
            ) from None
        except ServiceError as exc:
            raise as_api_error(exc) from None
        return Response(result, status=status.HTTP_201_CREATED)

    def _read_file(self, request: Request) -> bytes:
        length = request.META.get("CONTENT_LENGTH") or ""
        if length.isdigit() and int(length) > IMPORT_MAX_BYTES + 64 * 1024:
            raise _too_large()
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        if content_type in ("text/csv", "text/plain", "application/csv"):
            # Read the body ourselves: request.body stops at DATA_UPLOAD_MAX_MEMORY_SIZE.
            data = request.stream.read(IMPORT_MAX_BYTES + 1) if request.stream else b""
        elif content_type == "multipart/form-data":
            upload = request.data.get("file")
            if upload is None or not hasattr(upload, "read"):
                raise ApiError(
                    status_code=400,
                    code="invalid",
                    message="Send the CSV as the multipart field `file`.",
                    fields={"file": ["This field is required."]},
                )
            if upload.size > IMPORT_MAX_BYTES:
                raise _too_large()
            data = upload.read(IMPORT_MAX_BYTES + 1)
        else:
            raise ApiError(
                status_code=415,
                code="unsupported_media_type",
                message="Send text/csv, or multipart/form-data with a `file` field.",
            )
        if len(data) > IMPORT_MAX_BYTES:
            raise _too_large()
        return bytes(data)


class ImportJobView(ResearcherView):
    """The status of an import too large for one request (202 from POST .../imports/)."""

    min_role = Role.ANALYST
    pagination_class = None

    @extend_schema(
        operation_id="trials_import_status",
        responses={200: ImportJobOut, **ERRORS},
        description=(
            "Poll until `state` is done (`result`: the 201 body of a small file's import) or "
            "failed (`error`: its error, every row error by place; nothing was stored). "
            "Members of the study with the analyst role or above; any other caller, and an "
            "unknown id, get the same 404."
        ),
    )
    def get(self, request: Request, slug: str, job_id: str) -> Response:
        try:
            study: Study | None = self.study_for(request, slug)  # 403 below analyst
        except ApiError as refused:
            if refused.status_code != 404:
                raise
            study = None  # not a member: the same answer as for an unknown id
        job = import_job_for(study=study, job_id=job_id) if study is not None else None
        if job is None:
            raise ApiError(status_code=404, code="not_found", message="No such import.")
        headers = {} if job.state in ("done", "failed") else {"Retry-After": str(IMPORT_POLL_S)}
        return Response(import_job_payload(request, job), headers=headers)


def _too_large() -> ApiError:
    return ApiError(
        status_code=413,
        code="too_large",
        message=f"The file is over {IMPORT_MAX_BYTES // (1024 * 1024)} MB: split it.",
    )


# ------------------------------------------------------------------------- visits


VISIT_STATUSES = tuple(str(s) for s in VisitStatus)


class VisitExportView(ResearcherView):
    """One row per (participant, timepoint): each visit's window and status, as the return
    link and the reminders see them now (withdrawn participants are left out)."""

    min_role = Role.ANALYST
    query_params = frozenset({"format", "arm", "timepoint", "status"})

    @extend_schema(
        operation_id="visits_export",
        parameters=[
            OpenApiParameter("format", str, enum=["json", "csv"]),
            OpenApiParameter("arm", str, description="Arm code."),
            OpenApiParameter("timepoint", str, description="Timepoint label."),
            OpenApiParameter("status", str, enum=list(VISIT_STATUSES)),
        ],
        responses={
            (200, "application/json"): ExportPage,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV with header"),
            **ERRORS,
        },
    )
    def get(self, request: Request, slug: str) -> Response | HttpResponse:
        from reminders.selectors import reminders_sent_by_visit

        study = self.study_for(request, slug)
        fmt = export_format(request, ("json", "csv"))
        status_wanted = request.query_params.get("status")
        if status_wanted is not None and status_wanted not in VISIT_STATUSES:
            raise ApiError(
                status_code=400,
                code="invalid",
                message=f"Unknown visit status {status_wanted[:20]!r}.",
                fields={"status": [f"One of: {', '.join(VISIT_STATUSES)}."]},
            )
        participant_ids = Participant.objects.filter(
            study=study, withdrawn_at__isnull=True
        ).values_list("pk", flat=True)
        rows = study_visit_rows(
            study=study, reminders_sent=reminders_sent_by_visit(participant_ids=participant_ids)
        )
        wanted = {
            "arm": request.query_params.get("arm"),
            "timepoint": request.query_params.get("timepoint"),
            "status": status_wanted,
        }
        rows = [r for r in rows if all(v is None or r[k] == v for k, v in wanted.items())]
        audit_record(
            actor=request.user,
            action="export.visits",
            study=study.slug,
            target=fmt,
            detail={"params": dict(request.query_params.items())},
        )
        columns = VISIT_COLUMNS
        if fmt == "csv":
            lines = [",".join(c.name for c in columns)]
            lines += [",".join(csv_cell(r[c.name], c.type) for c in columns) for r in rows]
            response = HttpResponse("\n".join(lines) + "\n", content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{study.slug}-visits.csv"'
            response["Cache-Control"] = "no-store"
            return response
        results = [{c.name: json_value(r[c.name]) for c in columns} for r in rows]
        return Response({"next": None, "previous": None, "results": results})


class AnchorIn(serializers.Serializer[Any]):
    at = serializers.CharField(
        max_length=64,
        help_text="ISO 8601 with its offset (2026-12-02T14:05:00+01:00, or Z for UTC).",
    )

    def validate_at(self, value: str) -> datetime:
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise serializers.ValidationError(
                "Not an ISO 8601 date and time (e.g. 2026-12-02T14:05:00+01:00)."
            ) from None
        if moment.tzinfo is None:
            raise serializers.ValidationError(
                "Give the offset, e.g. 2026-12-02T14:05:00+01:00, or Z for UTC."
            )
        return moment


class AnchorOut(serializers.Serializer[Any]):
    participant = serializers.IntegerField()
    staff_anchor_at = serializers.DateTimeField()
    visits = serializers.ListField(child=serializers.DictField())


class ParticipantAnchorView(ResearcherView):
    """Set or correct a participant's staff anchor (e.g. the infusion time): the
    `staff`-anchored visits open and close relative to it. Refused, with nothing stored,
    when it would make a window inconsistent; every change is in the audit log."""

    min_role = Role.ANALYST

    @extend_schema(
        operation_id="participant_anchor",
        request=AnchorIn,
        responses={200: AnchorOut, 409: ERROR, **ERRORS},
    )
    def post(self, request: Request, slug: str, participant: int) -> Response:
        study = self.study_for(request, slug)
        data = AnchorIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            updated = participant_anchor_set(
                study=study,
                participant_id=participant,
                at=data.validated_data["at"],
                actor=request.user,
            )
        except ServiceError as exc:
            raise as_api_error(exc) from None
        row = participant_visits(participant=updated)
        return Response(
            {
                "participant": updated.pk,
                "staff_anchor_at": updated.staff_anchor_at.astimezone(UTC).isoformat()
                if updated.staff_anchor_at
                else None,
                "visits": [visit_payload(v) for v in row.visits],
            }
        )
