"""The web server's access log records routes, not credentials; a hung request is ended.

The real server (`python -m common.serve`, granian, as the Procfile starts it) with the
access log common.requestlog writes: the participant's tokens and the recruiter's id must
not appear in its output. Its hung-request limit, lowered to 2 s, ends the worker of an
answer stuck behind a row lock; a new worker serves the retry and the answer is stored once.
"""

# ruff: noqa: F811 - db_stack is a fixture of pipeline_fixtures, used as an argument

import threading
import uuid

import psycopg
import pytest
import requests

from common.logroutes import log_route, log_url
from tests.factories import make_study
from tests.scoring.pipeline_fixtures import (
    Stack,
    database_url,
    db_stack,  # noqa: F401 - a fixture
    free_port,
)
from tests.serving import serve_argv
from trials.models import Response, Session
from trials.services.enrolment import study_enrol
from trials.services.responses import steps_of

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

PID = "5f3c2a1b9e8d7c6b5a4f3e2d"


def test_log_route_masks_tokens_and_query_values() -> None:
    assert log_route("/t/AbC_-12/") == "/t/<token>/"
    assert log_route("/r/AbC/calendar.ics") == "/r/<token>/calendar.ics"
    assert log_route("/api/v1/sessions/xyz/responses") == "/api/v1/sessions/<token>/responses"
    assert log_route("/api/v1/participants/xyz/contact") == "/api/v1/participants/<token>/contact"
    assert (
        log_route("/s/demo/", f"PROLIFIC_PID={PID}&STUDY_ID=s")
        == "/s/demo/?PROLIFIC_PID=&STUDY_ID="
    )
    assert log_route("/api/v1/studies/demo/trials/") == "/api/v1/studies/demo/trials/"
    assert log_url("https://x.org/t/tok/?a=1") == "https://x.org/t/<token>/?a="
    assert log_url("-") == "-"


def test_the_access_log_has_no_token_and_no_recruiter_id(db_stack: Stack) -> None:
    make_study(slug="logged", n_events=2, n_timepoints=1)
    port = free_port()
    web = db_stack.start("web", serve_argv(port, workers=1))
    base = f"http://127.0.0.1:{port}"
    web.is_ready = lambda: _answers(base)
    db_stack.ready(web)

    http = requests.Session()
    page = http.get(f"{base}/s/logged/", params={"PROLIFIC_PID": PID}, timeout=10)
    assert page.status_code == 200
    enrolled = http.post(
        f"{base}/s/logged/",
        data={
            "consent": "yes",
            "PROLIFIC_PID": PID,
            "csrfmiddlewaretoken": http.cookies["csrftoken"],
        },
        headers={"Referer": page.url},
        timeout=10,
        allow_redirects=False,
    )
    assert enrolled.status_code == 302, enrolled.text[:300]
    session = Session.objects.get(participant__identity__external_id=PID)
    task = f"{base}/t/{session.token}/"
    assert http.get(task, timeout=10).status_code == 200
    answer = http.post(
        f"{base}/api/v1/sessions/{session.token}/responses",
        json={
            "client_id": str(uuid.uuid4()),
            "event": "PR1",
            "phase": "e1",
            "value": 40,
            "rt_ms": 900,
        },
        headers={"Referer": task},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    ret = http.get(f"{base}/r/{session.participant.token}/", timeout=10, allow_redirects=False)
    assert ret.status_code == 302
    # The last request's line is the one to wait for (health checks also log 200s).
    db_stack.wait(
        "the access log lines", lambda: '"GET /r/<token>/ HTTP/1.1" 302' in web.text(), 10
    )

    log = web.text()
    for secret in (session.token, session.participant.token, PID):
        assert secret not in log
    assert '"GET /s/logged/?PROLIFIC_PID= HTTP/1.1" 200' in log
    assert '"POST /s/logged/ HTTP/1.1" 302' in log
    assert '"GET /t/<token>/ HTTP/1.1" 200' in log
    assert '"POST /api/v1/sessions/<token>/responses HTTP/1.1" 201' in log
    assert f'"{base}/t/<token>/"' in log  # the referer, masked too
    assert '"GET /r/<token>/ HTTP/1.1" 302' in log


def test_a_hung_request_ends_its_worker_and_the_retry_is_stored_once(db_stack: Stack) -> None:
    study = make_study(slug="hung", n_events=2, n_timepoints=1, n_practice=0)
    session = study_enrol(study=study).session
    first = steps_of(session)[0]
    port = free_port()
    web = db_stack.start("web", serve_argv(port, workers=1), WEB_TIMEOUT="2")
    base = f"http://127.0.0.1:{port}"
    web.is_ready = lambda: _answers(base)
    db_stack.ready(web)
    url = f"{base}/api/v1/sessions/{session.token}/responses"
    body = {"client_id": str(uuid.uuid4()), "event": first.code, "phase": first.phase}
    body |= {"value": 40, "rt_ms": 900}

    outcome: list[object] = []
    dsn = database_url().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(dsn) as locker:  # holds the session row: the answer's claim waits
        locker.execute("SELECT 1 FROM trials_session WHERE id = %s FOR UPDATE", [session.pk])
        answering = threading.Thread(target=lambda: outcome.append(_post(url, body)))
        answering.start()
        db_stack.wait("the worker ended", lambda: "silent for" in web.text(), 15)
        answering.join(15)
        locker.rollback()
    assert outcome and isinstance(outcome[0], requests.ConnectionError), outcome
    assert web.alive()
    log = web.text()
    assert "request /api/v1/sessions/<token>/responses silent for" in log
    assert str(session.token) not in log

    retried = db_stack.wait("a new worker", lambda: _post(url, body, quiet=True), 20)
    assert retried.status_code in (200, 201), retried.text
    assert Response.objects.filter(client_id=body["client_id"]).count() == 1
    assert Session.objects.get(pk=session.pk).step_index == 1


def _post(url: str, body: dict[str, object], quiet: bool = False) -> object:
    try:
        return requests.post(url, json=body, timeout=20)
    except requests.ConnectionError as exc:
        if quiet:
            return None
        return exc


def _answers(base: str) -> bool:
    try:
        return requests.get(base + "/healthz", timeout=2).status_code < 600
    except requests.RequestException:
        return False
