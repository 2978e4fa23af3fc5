"""The participant API's lane: its requests skip the middleware they do not use.

The participant endpoints under /api/v1/sessions/ (the session's state, each answer, the
completion) are authorised by the session token in the URL alone: no cookie, no login, no
form. The middleware below this one in settings.MIDDLEWARE is for the pages: WhiteNoise
(static files), sessions, the language chosen per request, CSRF, the logged-in user and
messages. Together they cost about a tenth of an answer's CPU (bench/README.md, "Load").
This middleware sends those requests through a short chain of their own instead
(settings.PARTICIPANT_API_MIDDLEWARE: CommonMiddleware, for the Host check against
ALLOWED_HOSTS and Content-Length, and XFrameOptionsMiddleware), then to the same URL
resolver, views and error handlers. What stands above it in settings.MIDDLEWARE (the
security headers, the Content-Security-Policy, the token-guessing throttle) wraps both
lanes alike, so every participant response keeps those headers and that throttle.

The lane's requests are answered in the default language (settings.LANGUAGE_CODE): the
participant API's own messages are English; only DRF's messages for a malformed body
would follow the browser's Accept-Language under LocaleMiddleware, and the task page shows
its own translated text for every error.

Being a middleware in the project's stack (not a second WSGI application), the lane is
what Django's test client runs too, so every test of the participant API tests it.
"""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponseBase
from django.utils import translation
from django.utils.module_loading import import_string

# Every path of the participant API's session endpoints starts with this; nothing else does.
LANE_PREFIX = "/api/v1/sessions/"


def in_lane(path: str) -> bool:
    return path.startswith(LANE_PREFIX)


class _LaneHandler(BaseHandler):
    """Django's request handling (URL resolution, view, exceptions) behind a short chain."""

    def __init__(self, middleware: list[str]) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        view_step = self._get_response  # type: ignore[attr-defined]
        handler: Any = convert_exception_to_response(view_step)
        for path in reversed(middleware):
            try:
                instance = import_string(path)(handler)
            except MiddlewareNotUsed:
                continue
            # As BaseHandler.load_middleware registers them (sync only: this is WSGI).
            if hasattr(instance, "process_view"):
                self._view_middleware.insert(0, instance.process_view)
            if hasattr(instance, "process_template_response"):
                self._template_response_middleware.append(instance.process_template_response)
            if hasattr(instance, "process_exception"):
                self._exception_middleware.append(instance.process_exception)
            handler = convert_exception_to_response(instance)
        self._middleware_chain = handler


class ParticipantApiLaneMiddleware:
    """Participant API requests go through the lane's chain; every other request goes on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        self.lane = _LaneHandler(list(settings.PARTICIPANT_API_MIDDLEWARE))
        self.language = settings.LANGUAGE_CODE

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if not in_lane(request.path_info):
            return self.get_response(request)
        # A worker's thread keeps the language of its last page; the lane's is fixed.
        translation.activate(self.language)
        request.LANGUAGE_CODE = self.language
        response: HttpResponseBase = self.lane._middleware_chain(request)
        return response
