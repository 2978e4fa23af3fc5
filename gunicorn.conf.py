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

# A worker silent for this long is killed (the request gets a 500): set for the longest
# legitimate request. gunicorn's default, 30 s, killed imports over ~9 MB (issue 14.5); now a
# trials import over 2 MB runs in a Celery worker (202 and a status URL), and the longest
# requests left are an import of up to 2 MB checked and stored in the request and a
# whole-study export (1,000,000 trials streamed in ~10 s, bench/README.md). 120 s leaves
# those room on a loaded machine and still frees a hung worker within two minutes.
timeout = 120


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
