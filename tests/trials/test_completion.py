"""POST /api/v1/sessions/<token>/complete: refused while answers are missing, then one code."""

import re
import threading
from datetime import UTC, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from scoring.metrics import SCORE_VERSION
from scoring.models import Score
from tests.factories import make_study
from tests.trials.conftest import ParticipantApi
from trials.models import Session
from trials.services.enrolment import study_enrol

pytestmark = pytest.mark.usefixtures("postgres")

CODE = re.compile(r"^[A-HJ-NP-Z2-9]{8}$")


def make_session(**study_fields: Any) -> Session:
    """Steps: PR1 e1 + br, e1 + br of two events, e2 of each: 8."""
    return study_enrol(study=make_study(n_events=2, n_practice=1, **study_fields)).session


def next_visit_of(session: Session) -> dict[str, Any]:
    """make_study's second timepoint: opens 4 h after this completion, closes after 12 h."""
    session.refresh_from_db()
    assert session.completed_at is not None
    done = session.completed_at.astimezone(UTC)
    return {
        "timepoint": "T1",
        "url": f"http://testserver/r/{session.participant.token}/",
        "opens_at": (done + timedelta(hours=4)).isoformat(),
        "closes_at": (done + timedelta(hours=12)).isoformat(),
    }


def state_of(session: Session) -> tuple[Any, ...]:
    return Session.objects.values_list(
        "status", "step_index", "completed_at", "completion_code"
    ).get(pk=session.pk)


@pytest.mark.django_db
@pytest.mark.parametrize("answered", [0, 1, 5, 7])
def test_incomplete_session_lists_what_is_missing(api: ParticipantApi, answered: int) -> None:
    session = make_session()
    api.answer(session.token, answered)
    remaining = [
        {"event": s["event"], "phase": s["phase"]} for s in api.state(session.token).json()["steps"]
    ]
    before = state_of(session)

    res = api.complete(session.token)

    assert res.status_code == 409
    assert res.json() == {
        "error": {
            "code": "incomplete",
            "message": f"{8 - answered} answers are still missing.",
            "fields": {},
            "missing": remaining,
        }
    }
    assert len(remaining) == 8 - answered
    assert state_of(session) == before
    assert before[0] == ("created" if answered == 0 else "in_progress")
    assert not Score.objects.exists()


@pytest.mark.django_db
def test_complete_gives_a_code_and_queues_scoring(
    api: ParticipantApi, django_capture_on_commit_callbacks: Any
) -> None:
    session = make_session()
    api.answer(session.token)

    with django_capture_on_commit_callbacks() as callbacks:
        res = api.complete(session.token)

    assert res.status_code == 200
    session.refresh_from_db()
    assert res.json() == {
        "completion_code": session.completion_code,
        "redirect_url": "",
        "next_visit": next_visit_of(session),
    }
    assert CODE.match(session.completion_code)
    assert session.status == "completed"
    assert session.completed_at is not None
    assert session.step_index == 8
    score = Score.objects.get()
    assert (score.session_id, score.score_version, score.status, score.values) == (
        session.pk,
        SCORE_VERSION,
        "pending",
        {},
    )
    assert len(callbacks) == 1  # the publish of the scoring task, after commit


@pytest.mark.django_db
def test_repeated_completion_returns_the_same_code(api: ParticipantApi) -> None:
    session = make_session()
    api.answer(session.token)
    first = api.complete(session.token)
    before = state_of(session)

    again = [api.complete(session.token) for _ in range(3)]

    assert [r.status_code for r in again] == [200, 200, 200]
    assert all(r.json() == first.json() for r in again)
    assert state_of(session) == before
    assert Score.objects.count() == 1


@pytest.mark.django_db
def test_study_code_and_redirect_url(api: ParticipantApi) -> None:
    session = make_session(
        completion_code="BU2026",
        redirect_url="https://app.prolific.com/submissions/complete?cc={completion_code}",
    )
    api.answer(session.token)

    res = api.complete(session.token)

    assert res.json() == {
        "completion_code": "BU2026",
        "redirect_url": "https://app.prolific.com/submissions/complete?cc=BU2026",
        "next_visit": next_visit_of(session),
    }
    assert api.state(session.token).json()["completion"] == res.json()


@pytest.mark.django_db
def test_redirect_url_quotes_the_code(api: ParticipantApi) -> None:
    session = make_session(
        completion_code="A B&c=1", redirect_url="https://x.org/done?cc={completion_code}"
    )
    api.answer(session.token)

    assert (
        api.complete(session.token).json()["redirect_url"] == "https://x.org/done?cc=A%20B%26c%3D1"
    )


@pytest.mark.django_db
def test_redirect_url_without_placeholder_is_kept(api: ParticipantApi) -> None:
    session = make_session(redirect_url="https://sona.example/credit?id=7")
    api.answer(session.token)

    body = api.complete(session.token).json()

    assert body["redirect_url"] == "https://sona.example/credit?id=7"
    assert CODE.match(body["completion_code"])


@pytest.mark.django_db
def test_state_after_completion(api: ParticipantApi) -> None:
    session = make_session()
    api.answer(session.token)
    code = api.complete(session.token).json()["completion_code"]

    body = api.state(session.token).json()

    assert (body["status"], body["progress"], body["steps"]) == (
        "completed",
        {"done": 8, "total": 8},
        [],
    )
    assert body["completion"] == {
        "completion_code": code,
        "redirect_url": "",
        "next_visit": next_visit_of(session),
    }


@pytest.mark.django_db
def test_scoring_runs_once_committed(
    api: ParticipantApi, django_capture_on_commit_callbacks: Any
) -> None:
    session = make_session()
    api.answer(session.token)

    with django_capture_on_commit_callbacks(execute=True):
        api.complete(session.token)

    score = Score.objects.get()
    assert (score.session_id, score.status) == (session.pk, "done")


@pytest.mark.django_db(transaction=True)
def test_concurrent_completions_agree() -> None:
    session = make_session()
    ParticipantApi(Client()).answer(session.token)
    bodies: list[Any] = []
    barrier = threading.Barrier(4)

    def finish() -> None:
        try:
            barrier.wait()
            res = ParticipantApi(Client()).complete(session.token)
            bodies.append((res.status_code, res.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=finish) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    code = Session.objects.get().completion_code
    expected = {"completion_code": code, "redirect_url": "", "next_visit": next_visit_of(session)}
    assert bodies == [(200, expected)] * 4
    assert Score.objects.count() == 1
