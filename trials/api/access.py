"""The settings every researcher endpoint shares: who may see which study, and how.

One mixin, ResearcherView, carries authentication, permissions, pagination, filtering,
content negotiation and the check of query parameters for every researcher view. Who may see
which study is trials/access.py's rule (the pages read the same one): a study the user is not
a member of answers 404 whatever it holds, exactly like a study that does not exist; a member
whose role is too low gets 403.
"""

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, ClassVar

from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import BasePagination, Cursor, CursorPagination
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.authentication import ApiTokenAuthentication
from accounts.models import ApiToken
from common.errors import ApiError
from trials.access import NotAMember, Role, RoleTooLow, study_of_member
from trials.models import Study


class WriteScope(BasePermission):
    """A read-scope token may only read; a login session may write (CSRF-checked)."""

    message = "This token is read-only: create a token with --scope write to do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in SAFE_METHODS:
            return True
        token = request.auth
        return not isinstance(token, ApiToken) or token.scope == ApiToken.Scope.WRITE


class FormatIsNotARenderer(DefaultContentNegotiation):
    """`?format=` picks the export's file type in this API, never DRF's renderer (its 404)."""

    settings = SimpleNamespace(URL_FORMAT_OVERRIDE=None)  # type: ignore[assignment]


class ApiCursorPagination(CursorPagination):
    """Cursor pagination whose every ordering is an integer key; a bad cursor is a 400."""

    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound:
            raise invalid_cursor() from None
        position = str(cursor.position) if cursor and cursor.position is not None else None
        if position is not None and (not position.lstrip("-").isdigit() or len(position) > 18):
            raise invalid_cursor()
        return cursor


def invalid_cursor() -> ApiError:
    return ApiError(
        status_code=400,
        code="invalid_cursor",
        message="The cursor is not one this API gave out: start again without it.",
        fields={"cursor": ["Invalid cursor."]},
    )


PAGINATION_PARAMS = frozenset({"cursor", "page_size"})


class ResearcherView(APIView):
    """Base of researcher endpoints: members only; other studies answer 404."""

    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, WriteScope]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FormatIsNotARenderer
    pagination_class: type[BasePagination] | None = ApiCursorPagination
    filter_backends: Sequence[type[Any]] = [DjangoFilterBackend]
    throttle_classes: list[Any] = []  # failed logins are throttled in authentication
    #: the lowest role allowed: viewer < analyst < owner
    min_role: ClassVar[str] = Role.VIEWER
    #: query parameters this view understands besides its filters; any other is a 400
    query_params: ClassVar[frozenset[str]] = frozenset()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.check_query_params(request)

    def allowed_query_params(self) -> frozenset[str]:
        allowed = set(self.query_params)
        filterset_class = getattr(self, "filterset_class", None)
        if filterset_class is not None:
            allowed |= set(filterset_class.base_filters)
        return frozenset(allowed)

    def check_query_params(self, request: Request) -> None:
        allowed = self.allowed_query_params()
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            hint = f"Not a parameter of this endpoint; use {', '.join(sorted(allowed)) or 'none'}."
            raise ApiError(
                status_code=400,
                code="unknown_parameter",
                message=f"Unknown query parameter(s): {', '.join(unknown)}.",
                fields={name: [hint] for name in unknown},
            )

    def study_for(self, request: Request, slug: str, min_role: str | None = None) -> Study:
        """The study with the caller's `role`; 404 for non-members, 403 below min_role."""
        needed = min_role or self.min_role
        try:
            return study_of_member(user=request.user, slug=slug, min_role=needed)
        except NotAMember:
            raise ApiError(status_code=404, code="not_found", message="No such study.") from None
        except RoleTooLow as refused:
            raise ApiError(
                status_code=403,
                code="permission_denied",
                message=f"Your role in this study is {refused.role}; this needs {needed} or above.",
            ) from None
