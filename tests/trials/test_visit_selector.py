"""trials.selectors.study_visits: stored sessions and anchors fed to trials.visits."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import make_study
from trials.models import Participant, Session, Timepoint
from trials.selectors import participant_visits, study_visits
from trials.services.enrolment import session_create, study_enrol

pytestmark = [pytest.mark.usefixtures("postgres"), pytest.mark.django_db]


def test_stored_rows_become_visits_in_three_queries() -> None:
    study = make_study(n_events=1, n_practice=0, n_timepoints=3)
    Timepoint.objects.filter(study=study, order=1).update(anchor="staff")
    Timepoint.objects.filter(study=study, order=2).update(
        anchor="first", opens_after=timedelta(days=7), closes_after=timedelta(days=8)
    )
    now = timezone.now()
    a, b, c = (study_enrol(study=study) for _ in range(3))
    done_at = now - timedelta(hours=2)
    Session.objects.filter(pk__in=[a.session.pk, b.session.pk]).update(
        status="completed", completed_at=done_at
    )
    Participant.objects.filter(pk=b.participant.pk).update(staff_anchor_at=now - timedelta(hours=1))
    Session.objects.filter(pk=c.session.pk).update(status="abandoned")
    withdrawn = study_enrol(study=study)
    Participant.objects.filter(pk=withdrawn.participant.pk).update(withdrawn_at=now)

    # timepoints; participants with their arms; sessions
    with CaptureQueriesContext(connection) as queries:
        rows = study_visits(study=study, now=now)
    assert len(queries) == 3

    assert [r.participant.pk for r in rows] == [
        a.participant.pk,
        b.participant.pk,
        c.participant.pk,
    ]
    got = {
        r.participant.pk: [(v.timepoint.label, v.status, v.opens_at) for v in r.visits]
        for r in rows
    }
    h4 = b.participant.pk
    assert got[a.participant.pk] == [
        ("baseline", "done", a.participant.consented_at),
        ("T1", "waiting_anchor", None),
        ("T2", "upcoming", None),
    ]
    assert got[h4] == [
        ("baseline", "done", b.participant.consented_at),
        ("T1", "upcoming", now - timedelta(hours=1) + timedelta(hours=4)),
        ("T2", "upcoming", None),
    ]
    assert got[c.participant.pk][0][1] == "missed"
    assert rows[0].sessions[0].pk == a.session.pk
    assert rows[1].next is rows[1].visits[1]


def test_participant_visits_reads_one_participant() -> None:
    study = make_study(n_events=1, n_practice=0, n_timepoints=2)
    enrolment = study_enrol(study=study)
    now = timezone.now()
    Session.objects.filter(pk=enrolment.session.pk).update(
        status="completed", completed_at=now - timedelta(hours=5)
    )
    second = session_create(
        participant=enrolment.participant, timepoint=study.timepoints.get(order=1)
    )

    row = participant_visits(participant=enrolment.participant, now=now)

    assert [v.status for v in row.visits] == ["done", "open"]
    assert row.visits[1].opens_at == now - timedelta(hours=1)
    assert row.visits[1].closes_at == now + timedelta(hours=7)
    assert row.sessions[1].pk == second.pk
