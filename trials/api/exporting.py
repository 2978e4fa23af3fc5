"""The shared shape of the export endpoints (trials, responses, scores): format, include,
filters, keyset pages for JSON, streamed files for CSV and Parquet."""

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.pagination import Cursor
from rest_framework.request import Request
from rest_framework.response import Response

from audit.services import audit_record
from common.errors import ApiError
from trials.access import Role, role_of
from trials.api.access import PAGINATION_PARAMS, ApiCursorPagination, ResearcherView
from trials.api.filters import SessionFilter, sessions_filtered
from trials.api.participant import ERROR
from trials.exports import Query, csv_stream, page, parquet_stream
from trials.models import Session, Study

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("json", "csv", "parquet")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
INCLUDES = ("external_id",)

FORMAT_PARAM = OpenApiParameter(
    "format",
    str,
    enum=list(FORMATS),
    description="json (cursor pages, the default), csv or parquet (the whole table, streamed).",
)
INCLUDE_PARAM = OpenApiParameter(
    "include",
    str,
    enum=list(INCLUDES),
    description="external_id: add the recruiter's id of each participant (owner, analyst).",
)
CURSOR_PARAMS = [
    OpenApiParameter("cursor", str, description="The `next` link's cursor."),
    OpenApiParameter("page_size", int, description="Rows per JSON page (at most 1000)."),
]


def include_parts(request: Request, study: Study) -> set[str]:
    """The ?include= parts asked for; external ids need owner or analyst."""
    raw = request.query_params.get("include", "")
    parts = {p.strip() for p in raw.split(",") if p.strip()}
    unknown = sorted(parts - set(INCLUDES))
    if unknown:
        raise ApiError(
            status_code=400,
            code="invalid",
            message=f"Unknown include: {', '.join(unknown)}.",
            fields={"include": [f"One of: {', '.join(INCLUDES)}."]},
        )
    if "external_id" in parts and role_of(study) not in (Role.OWNER, Role.ANALYST):
        raise ApiError(
            status_code=403,
            code="permission_denied",
            message="External ids are for owners and analysts only.",
        )
    return parts


def export_format(request: Request, allowed: tuple[str, ...] = FORMATS) -> str:
    fmt = request.query_params.get("format", "json")
    if fmt not in allowed:
        raise ApiError(
            status_code=400,
            code="invalid_format",
            message=f"Unknown format {fmt[:20]!r}: use {', '.join(allowed)}.",
            fields={"format": [f"One of: {', '.join(allowed)}."]},
        )
    return fmt


def file_response(chunks: Any, *, fmt: str, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response


class ExportPage(serializers.Serializer[Any]):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = serializers.ListField(child=serializers.DictField())


def export_schema(operation_id: str, description: str) -> Callable[[F], F]:
    return extend_schema(
        operation_id=operation_id,
        description=description,
        parameters=[FORMAT_PARAM, INCLUDE_PARAM, *CURSOR_PARAMS],
        responses={
            (200, "application/json"): ExportPage,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV with header"),
            (200, "application/vnd.apache.parquet"): OpenApiResponse(
                OpenApiTypes.BINARY, description="Parquet file"
            ),
            400: ERROR,
            401: ERROR,
            403: ERROR,
            404: ERROR,
            429: ERROR,
        },
    )


class ExportView(ResearcherView):
    """GET one table of a study: JSON pages, or the whole table as CSV or Parquet."""

    min_role = Role.ANALYST
    filterset_class = SessionFilter
    query_params = PAGINATION_PARAMS | {"format", "include"}
    table: ClassVar[str] = ""

    def build_query(
        self,
        *,
        study: Study,
        sessions: QuerySet[Session],
        external_id: bool,
        after: int | None,
        limit: int | None,
    ) -> Query:
        raise NotImplementedError

    def get(self, request: Request, slug: str) -> Response | StreamingHttpResponse:
        study = self.study_for(request, slug)
        fmt = export_format(request)
        external_id = "external_id" in include_parts(request, study)
        sessions = sessions_filtered(study_id=study.pk, params=request.query_params)
        if fmt != "json" or not request.query_params.get("cursor"):
            # Whole-table downloads and the first page of a listing; not every page.
            audit_record(
                actor=request.user,
                action=f"export.{self.table}",
                study=study.slug,
                target=fmt,
                detail={
                    "params": {k: v for k, v in request.query_params.items() if k != "cursor"},
                    "external_id": external_id,
                },
            )
        if fmt != "json":
            query = self.build_query(
                study=study, sessions=sessions, external_id=external_id, after=None, limit=None
            )
            chunks = csv_stream(query) if fmt == "csv" else parquet_stream(query)
            return file_response(chunks, fmt=fmt, filename=f"{study.slug}-{self.table}")
        paginator = ApiCursorPagination()
        cursor = paginator.decode_cursor(request)
        size = paginator.get_page_size(request) or paginator.page_size
        after = int(cursor.position) if cursor and cursor.position is not None else None
        query = self.build_query(
            study=study, sessions=sessions, external_id=external_id, after=after, limit=size + 1
        )
        results, keys = page(query)
        next_link = None
        if len(results) > size:
            results = results[:size]
            paginator.base_url = request.build_absolute_uri()
            next_link = paginator.encode_cursor(
                Cursor(offset=0, reverse=False, position=str(keys[size - 1]))  # type: ignore[arg-type]
            )
        return Response({"next": next_link, "previous": None, "results": results})
