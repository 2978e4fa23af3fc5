"""Celery tasks: thin and idempotent; the score row (or the study's ModelFit) is the result.

Every task is acks_late with reject_on_worker_lost (settings), so a message whose worker
dies comes back; the tasks only re-read and re-write the (session, score version) row,
so running one twice is harmless.
"""

import logging
import os
import time
from datetime import timedelta

from celery import shared_task

from scoring.services import (
    TRANSIENT_ERRORS,
    model_fit_run,
    scores_attempt,
    scores_claim_waiting,
    scores_queue_unscored,
    scores_settled,
    sessions_score_or_fail,
)

log = logging.getLogger(__name__)

# Transient errors only; backoff 2, 4, 8 ... s (jittered), at most 60 s, well under the
# broker's visibility timeout so a countdown never outlives its message.
RETRY_TRANSIENT = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 8,
}
SWEEP_BATCH = 200
# A session completed less than this ago is left to the message its completion sent.
SWEEP_GRACE_SECONDS = 60


def _hold_for_tests(session_id: int) -> None:
    """Test hook: with BW_TEST_SCORE_DELAY_S set, sleep before scoring.

    tests/scoring/test_pipeline.py sets it on one worker so that it can SIGKILL that worker
    while a task runs. Never set it in a deployment.
    """
    delay = os.environ.get("BW_TEST_SCORE_DELAY_S")
    if delay:
        log.warning("BW_TEST_SCORE_DELAY_S: holding session %s for %s s", session_id, delay)
        time.sleep(float(delay))


@shared_task(
    name="scoring.score_session",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=120,
    time_limit=150,
    ignore_result=True,
    **RETRY_TRANSIENT,
)
def score_session(session_id: int) -> None:
    """Score one completed session with the current score version, and the others waiting
    for theirs in the same pass (a completion peak); nothing if a pass has scored it."""
    if scores_settled(session_id=session_id):
        return
    others = scores_claim_waiting(session_id=session_id)
    session_ids = scores_attempt(session_ids=[session_id]) + others
    _hold_for_tests(session_id)
    sessions_score_or_fail(session_ids=session_ids)


@shared_task(
    name="scoring.score_batch",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=240,
    time_limit=300,
    ignore_result=True,
    **RETRY_TRANSIENT,
)
def score_batch(session_ids: list[int]) -> None:
    """Score many sessions in one vectorised pass (sweep, rescore)."""
    sessions_score_or_fail(session_ids=scores_attempt(session_ids=session_ids))


@shared_task(
    name="scoring.sweep_unscored",
    acks_late=True,
    soft_time_limit=50,
    time_limit=60,
    ignore_result=True,
)
def sweep_unscored(grace_seconds: int = SWEEP_GRACE_SECONDS) -> int:
    """Queue every completed session that has no score of the current version (beat)."""
    session_ids = scores_queue_unscored(grace=timedelta(seconds=grace_seconds))
    for start in range(0, len(session_ids), SWEEP_BATCH):
        score_batch.delay(session_ids[start : start + SWEEP_BATCH])
    if session_ids:
        log.info("sweep: %d unscored sessions queued", len(session_ids))
    return len(session_ids)


@shared_task(
    # The name it had in the dashboard app: messages queued before the move still run.
    name="dashboard.fit_mixed_model",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    max_retries=5,
    # The group analysis of 5,000 sessions of 40 events takes seconds; the limits are the
    # room for far larger studies, under the broker's visibility timeout (600 s).
    soft_time_limit=420,
    time_limit=480,
    ignore_result=True,
)
def fit_mixed_model(study_id: int, fingerprint: str) -> None:
    """Run the study's group analysis on its scored sessions and store it (ModelFit)."""
    model_fit_run(study_id=study_id, fingerprint=fingerprint)
