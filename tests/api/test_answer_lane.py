"""The answer's WSGI lane (trials.api.answer_lane) against Django's own answer, PostgreSQL.

The production WSGI application is `AnswerLane(django_application)`. Each usual answer
stored by the lane must be the answer Django's view would have given (status, headers in
order, JSON); every other request must reach Django unchanged, with its body, before
anything was written. Django's test client does not run the WSGI application, so these
tests call it with WSGI environs (autocommit, as a server runs it).
"""

import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.test import RequestFactory, override_settings

from belief_web.wsgi import application, django_application
from common.throttle import participant_window
from protocol import phases
from tests.factories import make_study
from trials.api.answer_lane import AnswerLane
from trials.models import Response, Session
from trials.services.enrolment import study_enrol
from trials.services.responses import steps_of
from trials.steps import Step

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres")]

ADDRESS = "10.9.8.7"
SECURE = {
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
    "SECURE_SSL_REDIRECT": True,
    "SECURE_HSTS_SECONDS": 3600,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SECURE_HSTS_PRELOAD": True,
}


class Call:
    """A WSGI application's answer: status line, header list, body."""

    def __init__(self, app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> None:
        seen: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> None:
            seen["status"], seen["headers"] = status, list(headers)

        result = app(environ, start_response)
        try:
            self.body = b"".join(result)
        finally:
            getattr(result, "close", lambda: None)()
        self.status: str = seen["status"]
        self.headers: list[tuple[str, str]] = seen["headers"]

    def json(self) -> Any:
        return json.loads(self.body)


class Counting:
    """Django's application, counting the requests the lane hands to it. Made under the
    test's settings: Django's middleware reads its settings once, when it is built."""

    def __init__(self) -> None:
        self.calls = 0
        self.app = WSGIHandler()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls += 1
        return self.app(environ, start_response)


def _environ(
    path: str,
    body: bytes | str,
    *,
    method: str = "post",
    content_type: str = "application/json",
    host: str = "testserver",
    **headers: str,
) -> dict[str, Any]:
    raw = body.encode() if isinstance(body, str) else body
    factory = RequestFactory()
    if method == "get":
        request = factory.get(path, headers={"host": host, **headers})
    else:
        request = factory.post(
            path, data=raw, content_type=content_type, headers={"host": host, **headers}
        )
    environ: dict[str, Any] = request.environ
    environ["REMOTE_ADDR"] = ADDRESS
    return environ


def _answer(event: str = "PR1", phase: str = "e1", **over: Any) -> str:
    body = {
        "client_id": str(uuid.uuid4()),
        "event": event,
        "phase": phase,
        "value": 40,
        "rt_ms": 2500,
        "onset_at": "2026-12-03T10:00:00Z",
    }
    return json.dumps({**body, **over})


def _step_answer(step: Step, br: int | None) -> str:
    declared = phases.BY_NAME[step.phase]
    if declared is phases.BR:
        value = br
    elif declared.range.source is phases.RangeSource.FIXED:
        value = declared.range.low
    else:
        value = 40
    return _answer(event=step.code, phase=step.phase, value=value)


def _sessions(n: int) -> list[Session]:
    study = make_study(n_events=2, n_practice=1)
    return [study_enrol(study=study).session for _ in range(n)]


def _url(session: Session) -> str:
    return f"/api/v1/sessions/{session.token}/responses"


def _rows() -> list[tuple[Any, ...]]:
    return list(
        Response.objects.order_by("pk").values_list("session_id", "event__code", "phase", "value")
    )


def _comparable(call: Call) -> tuple[str, list[tuple[str, str]], dict[str, Any]]:
    """What must be equal between two sessions' answers to the same step."""
    body = call.json()
    for key in ("id", "client_id", "received_at", "event"):
        assert body.pop(key)
    headers = [(k, v) for k, v in call.headers if k != "Content-Length"]
    lengths = [v for k, v in call.headers if k == "Content-Length"]
    assert lengths == [str(len(call.body))]
    return call.status, headers, body


@pytest.mark.parametrize("secure", [False, True], ids=["http", "https-behind-proxy"])
def test_a_usual_answer_is_stored_by_the_lane_as_djangos_view_answers_it(secure: bool) -> None:
    ours, theirs = _sessions(2)
    extra = {"X-Forwarded-Proto": "https"} if secure else {}
    with override_settings(**(SECURE if secure else {})):
        fallback = Counting()
        lane = AnswerLane(fallback)
        django_application = WSGIHandler()
        brs: dict[tuple[int, str], int] = {}
        # Each session's own order of events; the same phases at the same positions.
        plans = {x.pk: steps_of(x) for x in (ours, theirs)}
        steps = plans[ours.pk][:7]  # the practice trial's, then two events' first steps
        for i, step in enumerate(steps):
            bodies = [
                _step_answer(plans[x.pk][i], brs.get((x.pk, plans[x.pk][i].code)))
                for x in (ours, theirs)
            ]
            by_lane = Call(lane, _environ(_url(ours), bodies[0], **extra))
            by_django = Call(django_application, _environ(_url(theirs), bodies[1], **extra))
            assert by_lane.status == "201 Created", by_lane.body
            assert fallback.calls == 0
            assert by_lane.json()["event"] == step.code
            assert by_django.json()["event"] == plans[theirs.pk][i].code
            if step.phase in ("e1", "br"):
                # The two sessions' base rates differ (the e1's answer, the br's value);
                # all else is the same.
                if step.phase == "e1":
                    brs[(ours.pk, step.code)] = by_lane.json()["br"]
                    brs[(theirs.pk, plans[theirs.pk][i].code)] = by_django.json()["br"]
                ours_, theirs_ = _comparable(by_lane), _comparable(by_django)
                assert ours_[:2] == theirs_[:2]
                drop = {"br", "value"}
                assert {k: v for k, v in ours_[2].items() if k not in drop} == {
                    k: v for k, v in theirs_[2].items() if k not in drop
                }
            else:
                assert _comparable(by_lane) == _comparable(by_django)
            names = [k for k, _ in by_lane.headers]
            assert ("Strict-Transport-Security" in names) is secure
            stored = json.loads(bodies[0])
            row = Response.objects.get(client_id=stored["client_id"])
            assert (row.session_id, row.event.code, row.phase, row.value, row.rt_ms) == (
                ours.pk,
                step.code,
                step.phase,
                stored["value"],
                2500,
            )
            assert by_lane.json()["id"] == row.pk
    indexes = Session.objects.filter(pk__in=[ours.pk, theirs.pk]).values_list("step_index")
    assert sorted(indexes) == [(len(steps),), (len(steps),)]


def _first_answered(session: Session) -> tuple[str, Call]:
    body = _answer()
    first = Call(application, _environ(_url(session), body))
    assert first.status == "201 Created"
    return body, first


@pytest.mark.parametrize(
    "case",
    [
        "unknown token",
        "replay",
        "out of order",
        "value off the scale",
        "value not an integer",
        "foreign host",
        "form body",
        "over the size limit",
        "get",
        "lane off",
    ],
)
def test_every_other_answer_goes_to_django_before_anything_is_written(case: str) -> None:
    """The lane's answer is Django's answer to the same request, and Django got the body."""
    (session,) = _sessions(1)
    body, first = _first_answered(session)
    url, environ_args, settings_over = _url(session), {}, {}
    expected_status = {
        "unknown token": "404 Not Found",
        "replay": "200 OK",
        "out of order": "409 Conflict",
        "value off the scale": "400 Bad Request",
        "value not an integer": "400 Bad Request",
        "foreign host": "400 Bad Request",
        "form body": "415 Unsupported Media Type",
        "over the size limit": "413 Request Entity Too Large",
        "get": "405 Method Not Allowed",
        "lane off": "201 Created",
    }[case]
    send = _answer(phase="br", value=50)  # the session's next step is br of PR1 ...
    if case == "unknown token":
        url = f"/api/v1/sessions/{'x' * 32}/responses"
    elif case == "replay":
        send = body
    elif case == "out of order":
        send = _answer(event="A01", phase="e1")
    elif case == "value off the scale":
        send = _answer(phase="br", value=500)
    elif case == "value not an integer":
        send = _answer(phase="br", value="fifty")
    elif case == "foreign host":
        environ_args = {"host": "evil.example"}
    elif case == "form body":
        environ_args = {"content_type": "application/x-www-form-urlencoded"}
    elif case == "over the size limit":
        send = _answer(phase="br", value=50, pad="x" * 5000)
    elif case == "get":
        environ_args = {"method": "get"}
    elif case == "lane off":
        settings_over = {"ANSWER_LANE": False}
        send = _answer(phase="br", value=first.json()["br"])
    before = _rows()
    with override_settings(**settings_over):
        fallback = Counting()
        by_lane = Call(AnswerLane(fallback), _environ(url, send, **environ_args))
    assert fallback.calls == 1
    assert by_lane.status == expected_status, by_lane.body
    if case == "replay":
        assert by_lane.body == first.body
    if case == "lane off":
        assert len(_rows()) == len(before) + 1
        return
    assert _rows() == before
    # The same request straight to Django: the same answer (nothing was consumed).
    by_django = Call(django_application, _environ(url, send, **environ_args))
    assert (by_django.status, by_django.body) == (by_lane.status, by_lane.body)
    assert _rows() == before


def test_the_lane_refers_an_insecure_answer_to_djangos_https_redirect() -> None:
    (session,) = _sessions(1)
    with override_settings(**SECURE):
        fallback = Counting()
        call = Call(AnswerLane(fallback), _environ(_url(session), _answer()))
    assert (call.status, fallback.calls) == ("301 Moved Permanently", 1)
    assert dict(call.headers)["Location"].startswith("https://testserver/")
    assert _rows() == []


def test_a_blocked_address_gets_the_throttles_429_and_writes_nothing() -> None:
    """Otherwise a guesser over the limit could still tell a real token (201) from a miss."""
    (session,) = _sessions(1)
    window = participant_window()
    for _ in range(window.limit):
        window.fail(ADDRESS)
    fallback = Counting()
    try:
        call = Call(AnswerLane(fallback), _environ(_url(session), _answer()))
    finally:
        window.reset(ADDRESS)
    assert (call.status, fallback.calls) == ("429 Too Many Requests", 1)
    assert call.json()["error"]["code"] == "throttled"
    assert _rows() == []


def test_an_unknown_token_counts_as_a_miss_of_the_throttle() -> None:
    fallback = Counting()
    window = participant_window()
    try:
        call = Call(
            AnswerLane(fallback), _environ(f"/api/v1/sessions/{'y' * 32}/responses", _answer())
        )
        assert call.status == "404 Not Found"
        assert window.fail(ADDRESS) == 2  # the lane's request counted as the first
    finally:
        window.reset(ADDRESS)


def test_a_connection_lost_between_answers_is_replaced_and_the_answer_stored_once() -> None:
    """The lane keeps its connection between answers; PostgreSQL ending it (a restart, an
    administrator) costs the next answer a trip through Django, not an error."""
    (session,) = _sessions(1)
    fallback = Counting()
    lane = AnswerLane(fallback)
    _, first = _first_answered(session)
    e1 = Call(lane, _environ(_url(session), _answer(phase="br", value=first.json()["br"])))
    assert e1.status == "201 Created"
    assert fallback.calls == 0
    assert connection.connection is not None  # kept for the next answer
    pid = connection.connection.info.backend_pid
    with psycopg.connect(**_admin_params(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    third = steps_of(session)[2]
    body = _answer(event=third.code, phase="e1")
    call = Call(lane, _environ(_url(session), body))
    assert call.status == "201 Created", call.body
    assert fallback.calls == 1
    assert Response.objects.filter(client_id=json.loads(body)["client_id"]).count() == 1
    assert [r[1:3] for r in _rows()] == [("PR1", "e1"), ("PR1", "br"), (third.code, "e1")]
    br = call.json()["br"]
    again = Call(lane, _environ(_url(session), _answer(event=third.code, phase="br", value=br)))
    assert (again.status, fallback.calls) == ("201 Created", 1)


def _admin_params() -> dict[str, Any]:
    s = connection.settings_dict
    return {
        "host": s["HOST"] or None,
        "port": s["PORT"] or None,
        "user": s["USER"],
        "password": s["PASSWORD"] or None,
        "dbname": s["NAME"],
    }
