"""The session context each process keeps for the one-statement answer (PostgreSQL).

The context (trials.services.responses._Context: where each step is, the study's settings)
is read once per session and process; the claim statement checks it against the database
at every answer. So whatever changed since (a study setting, a withdrawal, the session
closed, another process answering) stores nothing through a stale context: the general
path answers from the database, as it would have without the context.
"""

from typing import Any

import pytest
from django.utils import timezone

from tests.factories import make_study
from tests.trials.conftest import ParticipantApi
from trials.models import Participant, Response, Session, Study
from trials.services import responses
from trials.services.enrolment import study_enrol

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("postgres")]


@pytest.fixture
def session() -> Session:
    """Steps: PR1 e1 + br, e1 + br of two events, e2 of each."""
    return study_enrol(study=make_study(n_events=2, n_practice=1, min_br_view_ms=1000)).session


def _rows(session: Session) -> list[tuple[Any, ...]]:
    return list(
        Response.objects.filter(session=session)
        .order_by("pk")
        .values_list("event__code", "phase", "value", "rt_ms")
    )


def test_a_longer_base_rate_minimum_set_after_the_context_was_read_is_enforced(
    api: ParticipantApi, session: Session
) -> None:
    """min_br_view_ms may change while sessions run: the context's copy does not decide."""
    api.answer(session.token, 1)  # PR1 e1: the context holds min_br_view_ms 1000
    assert responses._contexts[session.token].min_br_ms == 1000
    Study.objects.filter(pk=session.participant.study_id).update(min_br_view_ms=4000)
    before = _rows(session)
    br = api.brs[(session.token, "PR1")]

    res = api.respond(session.token, event="PR1", phase="br", value=br, rt_ms=2500)

    assert res.status_code == 400
    assert list(res.json()["error"]["fields"]) == ["rt_ms"]
    assert _rows(session) == before
    assert session.token not in responses._contexts  # dropped: read again next time
    ok = api.respond(session.token, event="PR1", phase="br", value=br, rt_ms=4000)
    assert ok.status_code == 201
    assert _rows(session) == [*before, ("PR1", "br", br, 4000)]
    assert responses._contexts[session.token].min_br_ms == 4000


def test_a_shorter_minimum_is_not_refused_by_the_contexts_copy(
    api: ParticipantApi, session: Session
) -> None:
    api.answer(session.token, 1)
    Study.objects.filter(pk=session.participant.study_id).update(min_br_view_ms=100)
    br = api.brs[(session.token, "PR1")]

    res = api.respond(session.token, event="PR1", phase="br", value=br, rt_ms=500)

    assert res.status_code == 201, res.json()
    assert _rows(session)[-1] == ("PR1", "br", br, 500)


def test_a_withdrawal_after_the_context_was_read_stores_nothing(
    api: ParticipantApi, session: Session
) -> None:
    api.answer(session.token, 1)
    Participant.objects.filter(pk=session.participant_id).update(withdrawn_at=timezone.now())
    before = _rows(session)

    res = api.respond(session.token, event="PR1", phase="br", value=api.brs[(session.token, "PR1")])

    assert (res.status_code, res.json()["error"]["code"]) == (409, "withdrawn")
    assert _rows(session) == before
    assert Session.objects.get(pk=session.pk).step_index == 1


def test_a_session_closed_after_the_context_was_read_stores_nothing(
    api: ParticipantApi, session: Session
) -> None:
    api.answer(session.token, 1)
    Session.objects.filter(pk=session.pk).update(status=Session.Status.ABANDONED)
    before = _rows(session)

    res = api.respond(session.token, event="PR1", phase="br", value=api.brs[(session.token, "PR1")])

    assert (res.status_code, res.json()["error"]["code"]) == (409, "session_closed")
    assert _rows(session) == before


def test_answers_another_process_stored_meanwhile_are_not_stored_again(
    api: ParticipantApi, session: Session
) -> None:
    """This process's context says nothing about the step reached: the statement does."""
    first = api.answer(session.token, 2)  # PR1 e1, br
    second_e1 = api.respond(session.token, event="PR1", phase="e1", value=40)
    assert (second_e1.status_code, second_e1.json()["error"]["code"]) == (409, "already_answered")
    replay = api.respond(
        session.token, event="PR1", phase="e1", value=40, client_id=first[0]["client_id"]
    )
    assert (replay.status_code, replay.json()) == (200, first[0])
    assert [r[:2] for r in _rows(session)] == [("PR1", "e1"), ("PR1", "br")]


def test_the_oldest_context_is_forgotten_past_the_limit(
    api: ParticipantApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(responses, "CONTEXTS_KEPT", 2)
    responses._contexts.clear()
    study = make_study(n_events=2, n_practice=1)
    tokens = [study_enrol(study=study).session.token for _ in range(3)]
    for token in tokens:
        api.answer(token, 1)
    assert list(responses._contexts) == tokens[1:]
    api.answer(tokens[1], 1)  # PR1 br of the second: its context is the newest now
    assert list(responses._contexts) == [tokens[2], tokens[1]]
