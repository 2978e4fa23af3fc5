"""The query count of the participant hot path, pinned (a regression here costs every answer).

Inside a test the service's atomic() block is a savepoint inside the test's transaction, so
SAVEPOINT / RELEASE SAVEPOINT show up; in production they are BEGIN / COMMIT, which Django
does not log, and the count is two lower.
"""

from typing import Any

import pytest

from tests.factories import make_study
from tests.trials.conftest import ParticipantApi
from trials.models import Session
from trials.services.enrolment import study_enrol

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("postgres")]


@pytest.fixture
def session() -> Session:
    """Steps: PR1 e1 + br, e1 + br of two events, e2 of each."""
    return study_enrol(study=make_study(n_events=2, n_practice=1)).session


def test_e2_post_is_five_queries(
    api: ParticipantApi, session: Session, django_assert_num_queries: Any
) -> None:
    api.answer(session.token, 6)
    step = api.state(session.token).json()["steps"][0]
    assert step["phase"] == "e2"

    # 1. SELECT the session JOIN participant JOIN study, by token
    # 2. SAVEPOINT
    # 3. INSERT the response
    # 4. UPDATE the session: step_index + 1 WHERE step_index = the one read (the claim)
    # 5. RELEASE SAVEPOINT
    with django_assert_num_queries(5):
        res = api.respond(session.token, event=step["event"], phase="e2", value=40)

    assert res.status_code == 201


@pytest.mark.parametrize(("answered", "phase"), [(0, "e1"), (1, "br")])
def test_e1_and_br_posts_are_six_queries(
    api: ParticipantApi,
    session: Session,
    django_assert_num_queries: Any,
    answered: int,
    phase: str,
) -> None:
    api.answer(session.token, answered)

    # As for e2, plus a SELECT of the trial: its base rate (returned with e1, checked
    # against the value of br; drawn and stored in adaptive mode).
    with django_assert_num_queries(6):
        res = api.respond(
            session.token, event="PR1", phase=phase, value=40 if phase == "e1" else 50
        )

    assert res.status_code == 201


def test_replay_is_three_queries(
    api: ParticipantApi, session: Session, django_assert_num_queries: Any
) -> None:
    first = api.answer(session.token, 1)[0]

    # 1. SELECT the session by token
    # 2. SELECT the response by client_id JOIN event
    # 3. SELECT the trial's base rate (an e1 replay carries it)
    with django_assert_num_queries(3):
        res = api.respond(
            session.token, event="PR1", phase="e1", value=40, client_id=first["client_id"]
        )

    assert (res.status_code, res.json()) == (200, first)


def test_refused_out_of_order_is_two_queries(
    api: ParticipantApi, session: Session, django_assert_num_queries: Any
) -> None:
    # 1. SELECT the session by token
    # 2. SELECT a response with this client_id (is it a replay?)
    with django_assert_num_queries(2):
        res = api.respond(session.token, event="PR1", phase="br", value=50)

    assert res.status_code == 409


@pytest.mark.parametrize(("answered", "queries"), [(0, 2), (1, 3)])
def test_session_state_queries(
    api: ParticipantApi,
    session: Session,
    django_assert_num_queries: Any,
    answered: int,
    queries: int,
) -> None:
    api.answer(session.token, answered)

    # 1. SELECT the session JOIN participant JOIN study, by token
    # 2. SELECT code, texts of the list's events
    # 3. only when a base-rate screen is pending: SELECT the answered trials' base rates
    with django_assert_num_queries(queries):
        res = api.state(session.token)

    assert res.status_code == 200
