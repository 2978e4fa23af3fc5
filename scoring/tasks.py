"""Celery tasks: thin and idempotent; the score row is the result."""

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from scoring.metrics import SCORE_VERSION
from scoring.selectors import sessions_unscored
from scoring.services import score_mark_failed, sessions_score

log = logging.getLogger(__name__)

TRANSIENT = (OperationalError, InterfaceError)


@shared_task(
    name="scoring.score_session",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=8,
    soft_time_limit=120,
    time_limit=150,
    ignore_result=True,
)
def score_session(session_id: int) -> None:
    """Score one completed session (current score version)."""
    try:
        sessions_score(session_ids=[session_id])
    except TRANSIENT:
        raise
    except Exception as exc:
        log.exception("scoring session %s failed", session_id)
        score_mark_failed(session_id=session_id, reason=f"{type(exc).__name__}: {exc}")


@shared_task(
    name="scoring.score_batch",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    max_retries=8,
    soft_time_limit=240,
    time_limit=300,
    ignore_result=True,
)
def score_batch(session_ids: list[int]) -> None:
    """Score many sessions in one vectorised pass (rescore, sweep)."""
    try:
        sessions_score(session_ids=session_ids)
    except TRANSIENT:
        raise
    except Exception:
        # One bad session must not block the others: fall back to one by one.
        for session_id in session_ids:
            score_session.apply(args=[session_id])


@shared_task(name="scoring.sweep_unscored", ignore_result=True, time_limit=120)
def sweep_unscored() -> int:
    """Enqueue every completed session that has no score of the current version."""
    pending = sessions_unscored(score_version=SCORE_VERSION)
    for start in range(0, len(pending), 200):
        score_batch.delay(pending[start : start + 200])
    if pending:
        log.info("sweep: %d unscored sessions queued", len(pending))
    return len(pending)
