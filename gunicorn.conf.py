"""gunicorn's settings (read from the working directory by every `gunicorn` command here).

The app and its URLconf are imported once, in the master, before the workers fork: otherwise
each worker imports the views (pandas, SciPy) on its first request, seconds on a busy 2-core
machine, and the forked workers share those pages instead of holding a copy each. Nothing
here opens a database connection: Django's pool is created in each worker on first use.

The access log writes each request's route, not its URL: participant tokens and recruiters'
ids stay out of log files (_RouteLogger below).
"""

from typing import Any

from gunicorn.glogging import Logger

preload_app = True


def when_ready(server: object) -> None:
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports every view module


class _RouteLogger(Logger):
    """gunicorn's logger, writing routes instead of URLs (common.logroutes: no tokens)."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        from common.logroutes import log_route, log_url

        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        route = log_route(environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""))
        method, protocol = environ.get("REQUEST_METHOD"), environ.get("SERVER_PROTOCOL")
        atoms["r"] = f"{method} {route} {protocol}"
        atoms["U"] = route.split("?", 1)[0]
        atoms["q"] = route.split("?", 1)[1] if "?" in route else ""
        atoms["f"] = log_url(environ.get("HTTP_REFERER", "-"))
        atoms["{referer}i"] = atoms["f"]
        for name in ("raw_uri", "path_info", "query_string", "http_referer", "request_uri"):
            atoms.pop("{%s}e" % name, None)  # noqa: UP031 - gunicorn's own atom names
        return atoms


logger_class = _RouteLogger
