"""Background work of the dashboard: thin and idempotent, the ModelFit row is the result."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from dashboard.services import model_fit_run


@shared_task(
    name="dashboard.fit_mixed_model",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
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
