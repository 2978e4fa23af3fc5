"""Sessions left without an answer for SESSION_ABANDON_AFTER_HOURS become abandoned."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import make_study
from trials.models import Session
from trials.services.enrolment import study_enrol
from trials.tasks import sessions_abandon_stale


@pytest.mark.django_db
def test_only_stale_unfinished_sessions_are_abandoned(settings) -> None:  # type: ignore[no-untyped-def]
    settings.SESSION_ABANDON_AFTER_HOURS = 72
    study = make_study()
    now = timezone.now()
    stale, fresh, done = (study_enrol(study=study).session for _ in range(3))
    Session.objects.filter(pk=stale.pk).update(
        status="in_progress", last_activity_at=now - timedelta(hours=73)
    )
    Session.objects.filter(pk=fresh.pk).update(
        status="in_progress", last_activity_at=now - timedelta(hours=71)
    )
    Session.objects.filter(pk=done.pk).update(
        status="completed",
        completed_at=now - timedelta(days=9),
        last_activity_at=now - timedelta(days=9),
    )
    never_started = study_enrol(study=study).session
    Session.objects.filter(pk=never_started.pk).update(created_at=now - timedelta(hours=80))

    assert sessions_abandon_stale(now=now) == 2

    statuses = dict(Session.objects.values_list("pk", "status"))
    assert statuses == {
        stale.pk: "abandoned",
        fresh.pk: "in_progress",
        done.pk: "completed",
        never_started.pk: "abandoned",
    }
    assert sessions_abandon_stale(now=now) == 0
