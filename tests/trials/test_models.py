"""The invariants the database itself enforces (PostgreSQL constraint names asserted)."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from tests.factories import StudyFactory, make_study
from trials.models import (
    Arm,
    Event,
    Participant,
    ParticipantIdentity,
    Response,
    Session,
    Study,
    Timepoint,
)
from trials.services.enrolment import study_enrol

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("postgres")]


@contextmanager
def refused(constraint: str) -> Iterator[None]:
    """Expect the write to fail on the named PostgreSQL constraint (inside a savepoint)."""
    with pytest.raises(IntegrityError) as info, transaction.atomic():
        yield
    assert info.value.__cause__.diag.constraint_name == constraint  # type: ignore[union-attr]


@pytest.fixture
def session() -> Session:
    study = make_study(n_events=2, n_practice=0)
    return study_enrol(study=study, arm_code="patients").session


def make_response(session: Session, **fields: object) -> Response:
    values: dict[str, object] = {
        "session": session,
        "event": Event.objects.get(pk=session.plan["order1"][0][0]),
        "phase": "e1",
        "value": 40,
        "rt_ms": 900,
        "received_at": timezone.now(),
        "client_id": uuid.uuid4(),
    }
    values.update(fields)
    return Response.objects.create(**values)


def test_one_response_per_session_event_phase(session: Session) -> None:
    make_response(session)
    with refused("response_per_phase_unique"):
        make_response(session)
    assert Response.objects.count() == 1


def test_client_id_is_unique(session: Session) -> None:
    first = make_response(session)
    with refused("trials_response_client_id_key"):
        make_response(session, phase="e2", client_id=first.client_id)
    assert Response.objects.count() == 1


@pytest.mark.parametrize("phase", ["e1", "ebr1", "e2", "ebr2", "memory", "br"])
@pytest.mark.parametrize("value", [-1, 101])
def test_estimate_outside_a_percentage_is_refused(session: Session, phase: str, value: int) -> None:
    with refused("response_estimate_is_percent"):
        make_response(session, phase=phase, value=value)
    make_response(session, phase=phase, value=0)
    make_response(session, phase=phase, value=100, event_id=session.plan["order1"][1][0])
    assert sorted(Response.objects.values_list("value", flat=True)) == [0, 100]


@pytest.mark.parametrize(
    "phase", ["confidence", "vividness", "familiarity", "experience", "arousal", "negativity"]
)
@pytest.mark.parametrize("value", [0, 7])
def test_rating_outside_1_6_is_refused(session: Session, phase: str, value: int) -> None:
    with refused("response_rating_1_6"):
        make_response(session, phase=phase, value=value)
    make_response(session, phase=phase, value=1)
    make_response(session, phase=phase, value=6, event_id=session.plan["order1"][1][0])
    assert Response.objects.count() == 2


def test_unknown_phase_is_refused(session: Session) -> None:
    with refused("response_phase_valid"):
        make_response(session, phase="e3")


@pytest.mark.parametrize(("low", "high"), [(50, 50), (60, 40), (3, 101)])
def test_scale_must_be_a_nonempty_percentage_range(low: int, high: int) -> None:
    with refused("study_scale_valid"):
        StudyFactory(scale_min=low, scale_max=high)
    assert Study.objects.count() == 0


def test_adaptive_distance_range_must_be_valid() -> None:
    with refused("study_adaptive_d_valid"):
        StudyFactory(adaptive_d_min=10, adaptive_d_max=5)
    with refused("study_adaptive_d_valid"):
        StudyFactory(adaptive_d_min=0, adaptive_d_max=5)


@pytest.mark.parametrize("closes", [timedelta(hours=4), timedelta(hours=1)])
def test_timepoint_cannot_close_before_it_opens(closes: timedelta) -> None:
    study = StudyFactory()
    with refused("timepoint_window_valid"):
        Timepoint.objects.create(
            study=study, order=0, label="T", opens_after=timedelta(hours=4), closes_after=closes
        )
    Timepoint.objects.create(study=study, order=0, label="T", opens_after=timedelta(hours=4))
    assert Timepoint.objects.count() == 1


def test_arm_code_unique_within_a_study() -> None:
    study, other = StudyFactory(), StudyFactory()
    Arm.objects.create(study=study, code="patients", name="Patients")
    with refused("arm_code_unique"):
        Arm.objects.create(study=study, code="patients", name="Again")
    Arm.objects.create(study=other, code="patients", name="Patients")
    assert Arm.objects.count() == 2


def test_external_id_unique_within_a_study(session: Session) -> None:
    study = session.participant.study
    ParticipantIdentity.objects.create(
        participant=session.participant, study=study, source="prolific", external_id="P-1"
    )
    second = Participant.objects.create(study=study, arm=session.participant.arm)
    with refused("external_id_unique"):
        ParticipantIdentity.objects.create(
            participant=second, study=study, source="prolific", external_id="P-1"
        )
    assert ParticipantIdentity.objects.count() == 1


def test_one_session_per_participant_and_timepoint(session: Session) -> None:
    with refused("session_per_timepoint_unique"):
        Session.objects.create(
            participant=session.participant,
            timepoint=session.timepoint,
            event_list=session.event_list,
            plan=session.plan,
        )
    assert Session.objects.count() == 1


def test_completed_session_needs_completed_at(session: Session) -> None:
    with refused("session_completed_has_time"):
        Session.objects.filter(pk=session.pk).update(status=Session.Status.COMPLETED)
    Session.objects.filter(pk=session.pk).update(
        status=Session.Status.COMPLETED, completed_at=timezone.now()
    )
    assert Session.objects.get(pk=session.pk).status == "completed"
