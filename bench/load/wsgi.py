"""The bench's WSGI application: production's, plus the no-middleware ceiling.

`/bench/bare` is served by a second Django handler with no middleware at all (the "bare
Django view" of DESIGN.md's performance facts): the same ORM insert as `/bench/ceiling`,
without the production stack around it. Every other path goes to production's handler
(`belief_web.wsgi.served`: the answer lane, Django, the access log and the hung-request
limit), unchanged. Bench only: never deployed.
"""

from collections.abc import Callable, Iterable
from typing import Any

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.urls import get_resolver

from belief_web.wsgi import served as production

BARE_PATH = "/bench/bare"


class NoMiddlewareHandler(WSGIHandler):
    """Django's WSGI handler with an empty middleware list (URL resolution and view only)."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        self._middleware_chain = convert_exception_to_response(self._get_response)


bare = NoMiddlewareHandler()
# Every view module imported now, as common.serve does for production before its workers
# fork: gunicorn (the bench's sync and gthread servers) loads the app in each worker and
# would otherwise import them on a worker's first request, inside the first measured seconds.
get_resolver().url_patterns  # noqa: B018


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == BARE_PATH:
        return bare(environ, start_response)
    return production(environ, start_response)
