"""gunicorn's access log (the Procfile's `--access-logfile -`) records routes, not credentials.

A real gunicorn started as the Procfile starts it (gunicorn.conf.py read from the working
directory); the participant's tokens and the recruiter's id must not appear in its output.
"""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from common.logroutes import log_route, log_url
from tests.factories import make_study
from tests.scoring.pipeline_fixtures import VENV_BIN, Stack, database_url, free_port
from trials.models import Session

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


@pytest.fixture
def stack(transactional_db: None, postgres: None, tmp_path: Path) -> Iterator[Stack]:
    own = Stack(database_url=database_url(), redis_url="", log_dir=tmp_path)
    try:
        yield own
    finally:
        own.stop_all()


def test_gunicorn_access_log_has_no_token_and_no_recruiter_id(stack: Stack) -> None:
    make_study(slug="logged", n_events=2, n_timepoints=1)
    port = free_port()
    web = stack.start(
        "web",
        [
            str(VENV_BIN / "gunicorn"),
            "belief_web.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--access-logfile",
            "-",
        ],
    )
    base = f"http://127.0.0.1:{port}"
    web.is_ready = lambda: _answers(base)
    stack.ready(web)

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
    stack.wait("the access log lines", lambda: '"GET /r/<token>/ HTTP/1.1" 302' in web.text(), 10)

    log = web.text()
    for secret in (session.token, session.participant.token, PID):
        assert secret not in log
    assert '"GET /s/logged/?PROLIFIC_PID= HTTP/1.1" 200' in log
    assert '"POST /s/logged/ HTTP/1.1" 302' in log
    assert '"GET /t/<token>/ HTTP/1.1" 200' in log
    assert '"POST /api/v1/sessions/<token>/responses HTTP/1.1" 201' in log
    assert f'"{base}/t/<token>/"' in log  # the referer, masked too
    assert '"GET /r/<token>/ HTTP/1.1" 302' in log


def _answers(base: str) -> bool:
    try:
        return requests.get(base + "/healthz", timeout=2).status_code < 600
    except requests.RequestException:
        return False
