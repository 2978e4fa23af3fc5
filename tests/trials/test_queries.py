"""The query count of the participant hot path, pinned (a regression here costs every answer).

On PostgreSQL the usual answer (the next step, a fixed base rate) is ONE statement that
claims the step and inserts the row, checking the session's context that this process keeps
(trials.services.responses._Context) against the database as it does; a session this process
has not answered yet costs one SELECT of that context first. Inside a test that statement runs
in a savepoint of the test's transaction, so SAVEPOINT / RELEASE SAVEPOINT show up; in
production it runs in autocommit: one query, one round trip. Anything else (a replay, a
refusal, an adaptive draw) reads the session again through the ORM.
"""

from typing import Any

import pytest
from django.db import connection

from tests.factories import make_study
from tests.trials.conftest import ParticipantApi
from trials.models import Session
from trials.services import responses
from trials.services.enrolment import study_enrol

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("postgres")]


@pytest.fixture
def session() -> Session:
    """Steps: PR1 e1 + br, e1 + br of two events, e2 of each."""
    return study_enrol(study=make_study(n_events=2, n_practice=1)).session


def test_e2_post_is_one_statement(
    api: ParticipantApi, session: Session, django_assert_num_queries: Any
) -> None:
    api.answer(session.token, 6)
    step = api.state(session.token).json()["steps"][0]
    assert step["phase"] == "e2"

    # 1. SAVEPOINT (tests only)
    # 2. WITH claimed AS (UPDATE the session's step_index WHERE it is this step's, the
    #    session open, the participant not withdrawn and the study's settings those of the
    #    context) INSERT the response FROM claimed RETURNING id, the trial's base rate
    # 3. RELEASE SAVEPOINT (tests only)
    with django_assert_num_queries(3):
        res = api.respond(session.token, event=step["event"], phase="e2", value=40)

    assert res.status_code == 201


def test_a_sessions_first_answer_in_a_process_reads_its_context_first(
    api: ParticipantApi, session: Session, django_assert_num_queries: Any
) -> None:
    api.answer(session.token, 6)
    step = api.state(session.token).json()["steps"][0]
    responses._contexts.clear()  # as in another worker process

    # 1. SELECT the session's plan, step and status, the participant's withdrawal and the
    #    study's scale and options, by token (columns, no model instances)
    # 2.-4. SAVEPOINT, the statement, RELEASE SAVEPOINT
    with django_assert_num_queries(4):
        res = api.respond(session.token, event=step["event"], phase="e2", value=40)

    assert res.status_code == 201
    assert session.token in responses._contexts


@pytest.mark.parametrize(("answered", "phase", "queries"), [(0, "e1", 4), (1, "br", 3)])
def test_e1_and_br_posts_are_one_statement(
    api: ParticipantApi,
    session: Session,
    django_assert_num_queries: Any,
    answered: int,
    phase: str,
    queries: int,
) -> None:
    api.answer(session.token, answered)

    # As for e2 (+ the context's SELECT for the session's first answer): the statement checks
    # a br value against the trial's base rate and returns the base rate with an e1.
    # (Adaptive studies take the general path: + a trial SELECT and its UPDATE when the base
    # rate is drawn.)
    with django_assert_num_queries(queries):
        res = api.respond(
            session.token, event="PR1", phase=phase, value=40 if phase == "e1" else 50
        )

    assert res.status_code == 201


def test_replay_is_six_queries(
    api: ParticipantApi, session: Session, django_assert_num_queries: Any
) -> None:
    first = api.answer(session.token, 1)[0]

    # 1.-3. SAVEPOINT, the statement (claims nothing: the step is not the next), RELEASE
    # 4. SELECT the session JOIN participant JOIN study, by token (the general path)
    # 5. SELECT the response by client_id JOIN event
    # 6. SELECT the trial's base rate (an e1 replay carries it)
    with django_assert_num_queries(6):
        res = api.respond(
            session.token, event="PR1", phase="e1", value=40, client_id=first["client_id"]
        )

    assert (res.status_code, res.json()) == (200, first)


def test_refused_out_of_order_is_three_queries(
    api: ParticipantApi, session: Session, django_assert_num_queries: Any
) -> None:
    # 1. SELECT the session's context (not the next step: hand over, no statement)
    # 2. SELECT the session JOIN participant JOIN study, by token (the general path)
    # 3. SELECT a response with this client_id (is it a replay?)
    with django_assert_num_queries(3):
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


def test_the_two_statements_are_prepared_once_per_connection(
    api: ParticipantApi, session: Session
) -> None:
    api.answer(session.token, 3)

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]

    # Three answers (the context read at the first, the statement at each), two prepared
    # statements: PostgreSQL planned each once.
    assert len(prepared) == 2
    assert sum("WITH claimed AS" in s for s in prepared) == 1
    assert sum("WHERE s.token = $1" in s for s in prepared) == 1


@pytest.mark.parametrize(("external_id", "queries"), [(None, 13), ("P-1", 16)])
def test_enrolment_queries(
    api: ParticipantApi, django_assert_num_queries: Any, external_id: str | None, queries: int
) -> None:
    make_study(slug="q", n_events=2, n_practice=1)
    body = {"external_id": external_id} if external_id else {}

    # 1. SELECT the study by slug (the view)
    # +  with an external id: SELECT EXISTS a withdrawn id's digest (sticky withdrawal,
    #    issue 14.3: a withdrawn recruiter id may not enrol again)
    # 2-5. SELECT its timepoints, its lists JOIN event list, their events, its self-report
    #    instruments JOIN instrument (the questionnaire items of the plan): before the lock
    # 6. SAVEPOINT (tests; BEGIN in production, not a query)
    # 7. SELECT the study FOR UPDATE: the lock every enrolment of the study waits for
    # +  with an external id: SELECT a known identity
    # 8. SELECT the least-filled arm (COUNT)
    # 9. SELECT the Latin-square rows' use in that arm (COUNT)
    # 10. INSERT the participant
    # +  with an external id: INSERT the identity
    # 11. INSERT the session
    # 12. INSERT its trials (one statement)
    # 13. RELEASE SAVEPOINT (COMMIT in production): the lock is released
    with django_assert_num_queries(queries):
        res = api.enrol("q", **body)

    assert res.status_code == 201
    session = Session.objects.get(token=res.json()["session_token"])
    assert session.trials.count() == 3
