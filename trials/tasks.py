"""Periodic housekeeping of sessions; trials imports too large for a request."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from trials.models import Session
from trials.services import import_jobs

log = logging.getLogger(__name__)


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


@shared_task(
    name="trials.import_file",
    ignore_result=True,
    soft_time_limit=import_jobs.SOFT_TIME_LIMIT_S,
    time_limit=import_jobs.TIME_LIMIT_S,
)
def import_file(job_id: str) -> str:
    """A trials import too large for a request (trials.services.import_jobs)."""
    try:
        return import_jobs.import_job_run(job_id)
    except Exception as exc:
        log.exception("import %s stopped", job_id)
        return import_jobs.import_job_crashed(job_id, exc)


@shared_task(
    name="trials.sweep_import_jobs", ignore_result=True, soft_time_limit=100, time_limit=120
)
def sweep_import_jobs() -> dict[str, int]:
    return import_jobs.import_jobs_sweep()
