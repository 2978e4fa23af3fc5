"""The web server's access log and its hung-request limit, at the WSGI level.

The production server (granian, `python -m common.serve`) has neither in the form this
project needs: its own access log prints each request's path, which carries participant
tokens (/t/<token>/, the session API) and recruiters' ids (?PROLIFIC_PID=...), and it has no
per-request time limit. `RequestGuard` wraps the WSGI application and gives both:

- an access log line per request, in gunicorn's format ("combined"), with the route instead
  of the URL and the Referer masked the same way (common.logroutes), to the logger
  `belief_web.access` (standard output in the settings' LOGGING);
- a watchdog thread per process: a request that has not produced a byte for `timeout`
  seconds (the longest legitimate ones are an import of up to 2 MB and a whole-study export
  streamed in ~10 s) is logged with its route, and the worker process ends with status 70,
  as gunicorn's timeout did; the server starts a new worker (granian's
  --respawn-failed-workers) and the client's connection is closed without an answer. The
  request of the worker's other thread, if one is in flight, is cut too: its client
  retries (the participant's queue does, and an answer is stored once by its client_id).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from common.logroutes import log_route, log_url

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

access_log = logging.getLogger("belief_web.access")
log = logging.getLogger(__name__)

HUNG_EXIT_STATUS = 70  # EX_SOFTWARE; the error line before it names the route
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _log_time(now: float) -> str:
    """gunicorn's %(t)s: [03/Dec/2026:15:20:01 +0000], local time."""
    t = time.localtime(now)
    offset = t.tm_gmtoff // 60
    sign = "+" if offset >= 0 else "-"
    return (
        f"[{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} "
        f"{sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}]"
    )


def _end_worker(route: str, silent_s: float) -> None:
    log.error(
        "request %s silent for %.0f s: ending worker %d (a new one takes its place)",
        route,
        silent_s,
        os.getpid(),
    )
    logging.shutdown()
    os._exit(HUNG_EXIT_STATUS)


class _Request:
    """One request in flight: what its log line needs and when it last produced a byte."""

    __slots__ = ("environ", "route", "last", "status", "length")

    def __init__(self, environ: dict[str, Any], now: float) -> None:
        self.environ = environ
        self.route = log_route(environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""))
        self.last = now
        self.status = "500"  # unless the application starts a response
        self.length = "-"


class RequestGuard:
    """Logs every request's route and ends the process when one hangs (module docstring)."""

    def __init__(
        self,
        app: WsgiApp,
        *,
        timeout: float,
        log_requests: bool = True,
        on_hung: Callable[[str, float], None] = _end_worker,
        check_every: float = 1.0,
    ) -> None:
        self.app = app
        self.timeout = timeout
        self.log_requests = log_requests
        self.on_hung = on_hung
        self.check_every = check_every
        self._in_flight: dict[int, _Request] = {}  # by id(): the server may iterate elsewhere
        self._watchdog_pid = 0  # the process whose watchdog runs (a fork has none)
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = _Request(environ, time.monotonic())
        if self.timeout > 0:
            if self._watchdog_pid != os.getpid():
                self._start_watchdog()
            self._in_flight[id(request)] = request

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            request.status = status.split(" ", 1)[0]
            for name, value in headers:
                if name.lower() == "content-length":
                    request.length = value
            return start_response(status, headers, exc_info)

        try:
            result = self.app(environ, start)
        except BaseException:
            self._done(request)
            raise
        if isinstance(result, list):
            self._done(request)
            return result
        return self._stream(result, request)

    def _stream(self, result: Iterable[bytes], request: _Request) -> Iterator[bytes]:
        try:
            for chunk in result:
                request.last = time.monotonic()
                yield chunk
        finally:
            close = getattr(result, "close", None)
            try:
                if close is not None:
                    close()
            finally:
                self._done(request)

    def _done(self, request: _Request) -> None:
        self._in_flight.pop(id(request), None)
        if not self.log_requests:
            return
        environ = request.environ
        access_log.info(
            '%s - - %s "%s %s %s" %s %s "%s" "%s"',
            environ.get("REMOTE_ADDR", "-"),
            _log_time(time.time()),
            environ.get("REQUEST_METHOD", "-"),
            request.route,
            environ.get("SERVER_PROTOCOL", "-"),
            request.status,
            request.length,
            log_url(environ.get("HTTP_REFERER", "-")),
            environ.get("HTTP_USER_AGENT", "-"),
        )

    def _start_watchdog(self) -> None:
        with self._lock:
            if self._watchdog_pid == os.getpid():
                return
            self._in_flight.clear()  # a forked copy holds its parent's requests
            threading.Thread(target=self._watch, name="request-watchdog", daemon=True).start()
            self._watchdog_pid = os.getpid()

    def _watch(self) -> None:
        while True:
            time.sleep(self.check_every)
            now = time.monotonic()
            for key, request in list(self._in_flight.items()):
                silent = now - request.last
                if silent > self.timeout:
                    self._in_flight.pop(key, None)
                    self.on_hung(request.route, silent)
