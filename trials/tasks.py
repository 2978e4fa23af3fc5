"""Periodic housekeeping of sessions."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from trials.models import Session


def sessions_abandon_stale(*, now=None) -> int:  # type: ignore[no-untyped-def]
    """Mark sessions with no answer for SESSION_ABANDON_AFTER_HOURS as abandoned."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.SESSION_ABANDON_AFTER_HOURS)
    return (
        Session.objects.filter(
            Q(status=Session.Status.CREATED) | Q(status=Session.Status.IN_PROGRESS)
        )
        .alias(activity=Coalesce("last_activity_at", "created_at"))
        .filter(activity__lt=cutoff)
        .update(status=Session.Status.ABANDONED)
    )


@shared_task(
    name="trials.abandon_stale_sessions", ignore_result=True, soft_time_limit=100, time_limit=120
)
def abandon_stale_sessions() -> int:
    return sessions_abandon_stale()
