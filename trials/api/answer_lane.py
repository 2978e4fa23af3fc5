"""The participant's answer at the WSGI level: the usual answer stored without Django's
request handling.

Answers are nearly all of the participant API's traffic (60-124 per session, one every few
seconds per participant), and even a bare Django view costs most of an answer's CPU in
request and response objects, the handler and URL resolution (bench/README.md, "Load").
`AnswerLane` wraps the project's WSGI application. A POST to
/api/v1/sessions/<token>/responses is answered here when everything about it is usual:

- the Host is one of ALLOWED_HOSTS, the request is secure where SECURE_SSL_REDIRECT wants it,
  no DISALLOWED_USER_AGENTS or PREPEND_WWW are configured;
- the client's address is not blocked by the token-guessing throttle (common.throttle);
- the body is plainly valid JSON (trials.api.participant.plain_answer, the view's own rules)
  within PARTICIPANT_BODY_LIMIT, sent as application/json (UTF-8);
- it is the session's next step with a fixed base rate, stored by the service's fast path
  (trials.services.responses.record_fast, PostgreSQL).

It is then answered with the status, JSON and headers that the view behind the middleware
would have sent (tests/api/test_answer_lane.py compares the two byte for byte). Anything
else (another method or path, a refusal, a replay, a race, an unknown token, an adaptive
draw, a questionnaire item, a cache or database error) goes to the Django application
unchanged, with the body it sent, before anything was written, and is answered there.
ANSWER_LANE=0 (environment or settings) sends every request to Django.
"""

import io
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.http.request import split_domain_port, validate_host
from rest_framework.renderers import JSONRenderer

from common.csp import POLICY
from common.env import env_bool
from common.throttle import client_ip_of, participant_window
from trials.api.participant import ResponseCreateView, plain_answer
from trials.services.errors import ServiceError
from trials.services.responses import Answer, payload_summary, record_fast

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_ANSWER_PATH = re.compile(r"/api/v1/sessions/([A-Za-z0-9_-]{1,64})/responses")
_JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8"})
_CREATED = "201 Created"  # the only status the lane answers with
# The headers the view itself sets (DRF's `Allow`), in its order.
_VIEW_HEADERS = [("Content-Type", "application/json")] + list(
    ResponseCreateView().default_response_headers.items()
)


def lane_enabled() -> bool:
    return bool(getattr(settings, "ANSWER_LANE", env_bool("ANSWER_LANE", True)))


def _secure(environ: dict[str, Any]) -> bool:
    """HttpRequest.is_secure() on a WSGI environ."""
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        header, secure_value = proxy
        value = environ.get(header)
        if value is not None:
            return bool(value.split(",", 1)[0].strip() == secure_value)
    return bool(environ.get("wsgi.url_scheme") == "https")


def _host_allowed(environ: dict[str, Any]) -> bool:
    """What HttpRequest.get_host() accepts (a False sends the request to Django, which
    refuses it or, with DEBUG's localhost allowance, serves it)."""
    if settings.USE_X_FORWARDED_HOST and "HTTP_X_FORWARDED_HOST" in environ:
        host = environ["HTTP_X_FORWARDED_HOST"]
    else:
        host = environ.get("HTTP_HOST")
    if not host:
        return False
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


def _usual_request(environ: dict[str, Any], secure: bool) -> bool:
    """The middleware would let the request through to the view unchanged."""
    if settings.DISALLOWED_USER_AGENTS or settings.PREPEND_WWW:
        return False
    if settings.SECURE_SSL_REDIRECT and not secure:
        return False
    return _host_allowed(environ)


Headers = list[tuple[str, str]]


def security_headers(secure: bool) -> tuple[Headers, Headers]:
    """The headers the middleware adds to the view's JSON answer, in the order it adds them:
    XFrameOptionsMiddleware, CommonMiddleware's Content-Length (added by the caller),
    ParticipantMissThrottleMiddleware (none), the Content-Security-Policy, then
    SecurityMiddleware."""
    head = [("X-Frame-Options", settings.X_FRAME_OPTIONS.upper())]
    tail = [("Content-Security-Policy", POLICY)]
    if settings.SECURE_HSTS_SECONDS and secure:
        sts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            sts += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            sts += "; preload"
        tail.append(("Strict-Transport-Security", sts))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        tail.append(("X-Content-Type-Options", "nosniff"))
    policy = settings.SECURE_REFERRER_POLICY
    if policy:
        value = policy if isinstance(policy, str) else ",".join(policy)
        tail.append(("Referrer-Policy", ",".join(v.strip() for v in value.split(","))))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        tail.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    return head, tail


class AnswerLane:
    """The WSGI application: the usual answer here, every other request to `app`."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        match = _ANSWER_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None or not lane_enabled() or connection.vendor != "postgresql":
            return self.app(environ, start_response)
        length = environ.get("CONTENT_LENGTH") or ""
        secure = _secure(environ)
        if (
            not length.isdigit()
            or int(length) > settings.PARTICIPANT_BODY_LIMIT
            or (environ.get("CONTENT_TYPE") or "").lower() not in _JSON_TYPES
            or not _usual_request(environ, secure)
        ):
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(body)  # for Django, if the answer goes there
        answered = None
        if len(body) == int(length):  # a short body: Django reads and refuses it
            answered = self._answer(environ, match.group(1), body, secure)
        if answered is None:
            return self.app(environ, start_response)
        headers, payload = answered
        start_response(_CREATED, headers)
        return [payload]

    def _answer(
        self, environ: dict[str, Any], token: str, body: bytes, secure: bool
    ) -> tuple[Headers, bytes] | None:
        answer = plain_answer(body)
        if answer is None:
            return None
        window = participant_window()
        if window.limit > 0:
            try:
                if window.blocked_for(client_ip_of(environ)):
                    return None
            except Exception:  # noqa: BLE001 - the middleware logs it and serves
                return None
        # The thread's connection stays checked out of the pool from one answer to the next
        # (a sync worker answers one request at a time): checking it out and back in around
        # every answer, as Django's request signals do, cost a tenth of the answer's CPU.
        # Django's next request of its own gives it back first (close_old_connections), and
        # one that failed is given back there too, broken, for the pool to replace.
        try:
            recorded = record_fast(token=token, answer=Answer(**answer))
        except (ServiceError, DatabaseError):
            # Nothing was written, or (a connection lost after the commit) the row is
            # stored and Django's path answers the retry of it as the replay it is.
            recorded = None
        if recorded is None:
            return None
        payload = JSONRenderer().render(payload_summary(recorded))
        head, tail = security_headers(secure)
        headers = [*_VIEW_HEADERS, *head, ("Content-Length", str(len(payload))), *tail]
        return headers, payload
