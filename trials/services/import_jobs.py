"""Trials imports run by a worker: files too large to check and store inside a request.

The request keeps the file in the database (ImportUpload: the web and worker containers
share the database, not a disk), creates the job and queues `trials.import_file`, then
answers 202 with the job's status URL. The task checks the file whole, reporting the rows
checked as it goes; then, in one transaction that first locks the job row, it stores the
sessions, marks the job done with the synchronous import's result and deletes the file.
A file with errors stores nothing: the job fails with the synchronous answer's error (code,
message, every error by row and column) and the file is deleted.

A message redelivered because its worker was killed runs the import again from the file
(nothing of the first run was committed); one that finds the job finished does nothing,
and two runs at once serialise on the job row, so the file is stored at most once. The
periodic sweep queues again a job whose message never reached a worker (the broker was
down when it was queued) and fails, with its file deleted, a job unfinished after a day.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any, Final

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from common.errors import error_body
from trials.models import ImportJob, ImportUpload, Study
from trials.services.errors import FileRejected, ServiceError
from trials.services.imports import trials_import_check, trials_import_store

log = logging.getLogger(__name__)

State = ImportJob.State
UNFINISHED: Final = (State.QUEUED, State.RUNNING)
# Starts of one job's task (redeliveries after a killed worker) before it is given up.
MAX_ATTEMPTS: Final = 3
# A queued job no worker has started after this: its message is published again.
REQUEUE_AFTER: Final = timedelta(minutes=10)
# A job still unfinished after this is failed and its file deleted.
EXPIRE_AFTER: Final = timedelta(hours=24)
# The task's time limits (trials.tasks): under the broker's visibility timeout (600 s), so
# that a live worker's message is never handed to a second worker.
SOFT_TIME_LIMIT_S: Final = 540
TIME_LIMIT_S: Final = 570


def import_job_create(*, study: Study, data: bytes, actor: Any) -> ImportJob:
    """Keep the file, create its job and queue the task once the transaction commits."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        job = ImportJob.objects.create(study=study, created_by=user, size=len(data))
        ImportUpload.objects.create(job=job, data=data)
        transaction.on_commit(lambda: _publish(job.pk))
    return job


def _publish(job_id: uuid.UUID) -> None:
    from common.publish import task_publish
    from trials.tasks import import_file

    try:
        task_publish(import_file, str(job_id))
    except Exception as exc:  # noqa: BLE001 - the sweep queues it again
        log.warning(
            "import %s not queued (%s: %s); the sweep will queue it",
            job_id,
            type(exc).__name__,
            exc,
        )


def _progress(job_id: uuid.UUID, done: int, total: int) -> None:
    ImportJob.objects.filter(pk=job_id, state=State.RUNNING).update(
        rows_checked=done, rows_total=total
    )


def _fail(job_id: uuid.UUID, error: dict[str, Any]) -> str:
    """Fail an unfinished job with `error` (the inner object of the API's error body)."""
    with transaction.atomic():
        failed = ImportJob.objects.filter(pk=job_id, state__in=UNFINISHED).update(
            state=State.FAILED, error=error, finished_at=timezone.now()
        )
        ImportUpload.objects.filter(job_id=job_id).delete()
    return State.FAILED if failed else "finished"


def rejected_error(exc: FileRejected) -> dict[str, Any]:
    """The synchronous answer's error for a refused file (400 invalid_file)."""
    body = error_body("invalid_file", exc.message, rows=[e.as_dict() for e in exc.errors])
    return dict(body["error"])


def service_error(exc: ServiceError) -> dict[str, Any]:
    """The synchronous answer's error for a refused write (e.g. 409 import_conflict)."""
    return dict(error_body(exc.code, exc.message, exc.fields, **exc.extra)["error"])


def import_job_run(job_id: str) -> str:
    """The task: check and store the job's file; returns the state it left the job in."""
    return _run(uuid.UUID(job_id))


def _run(job_id: uuid.UUID) -> str:
    claimed = ImportJob.objects.filter(pk=job_id, state__in=UNFINISHED).update(
        state=State.RUNNING, attempts=F("attempts") + 1, started_at=timezone.now()
    )
    if not claimed:
        return "finished"  # done or failed already (a redelivered message), or deleted
    job = ImportJob.objects.select_related("study", "created_by").get(pk=job_id)
    if job.attempts > MAX_ATTEMPTS:
        return _fail(
            job_id,
            dict(
                error_body(
                    "import_failed",
                    f"The import was started {MAX_ATTEMPTS} times without finishing (its "
                    "worker stopped each time): nothing was imported. Split the file.",
                )["error"]
            ),
        )
    data = ImportUpload.objects.filter(job_id=job_id).values_list("data", flat=True).first()
    if data is None:
        return _fail(
            job_id,
            dict(error_body("import_failed", "The file is gone: nothing was imported.")["error"]),
        )
    try:
        checked = trials_import_check(
            study=job.study,
            data=bytes(data),
            progress=lambda done, total: _progress(job_id, done, total),
        )
        del data
        with transaction.atomic():
            # Locked first: a second run of the same job waits here, then finds it done.
            if (
                not ImportJob.objects.select_for_update()
                .filter(pk=job_id, state=State.RUNNING)
                .exists()
            ):
                return "finished"
            result = trials_import_store(checked, actor=job.created_by)
            ImportJob.objects.filter(pk=job_id).update(
                state=State.DONE, result=result, finished_at=timezone.now()
            )
            ImportUpload.objects.filter(job_id=job_id).delete()
    except FileRejected as exc:
        return _fail(job_id, rejected_error(exc))
    except ServiceError as exc:
        return _fail(job_id, service_error(exc))
    return State.DONE


def import_job_crashed(job_id: str, exc: BaseException) -> str:
    """The task stopped on an unexpected error (or its time limit): nothing was stored."""
    from celery.exceptions import SoftTimeLimitExceeded

    if isinstance(exc, SoftTimeLimitExceeded):
        error = error_body(
            "timeout",
            f"The import took longer than {SOFT_TIME_LIMIT_S} s and was stopped: nothing was "
            "imported. Split the file.",
        )
    else:
        error = error_body(
            "server_error",
            "The import stopped on a server error: nothing was imported. Send the file again.",
        )
    return _fail(uuid.UUID(job_id), dict(error["error"]))


def import_jobs_sweep(*, now: Any = None) -> dict[str, int]:
    """Queue again the jobs no worker started; fail those unfinished for too long."""
    now = now or timezone.now()
    expired = 0
    late = error_body(
        "import_failed",
        "The import did not finish within a day: nothing was imported. Send the file again.",
    )["error"]
    for job_id in ImportJob.objects.filter(
        state__in=UNFINISHED, created_at__lt=now - EXPIRE_AFTER
    ).values_list("pk", flat=True):
        expired += _fail(job_id, dict(late)) == State.FAILED
    stale = list(
        ImportJob.objects.filter(state=State.QUEUED, queued_at__lt=now - REQUEUE_AFTER).values_list(
            "pk", flat=True
        )
    )
    ImportJob.objects.filter(pk__in=stale, state=State.QUEUED).update(queued_at=now)
    for job_id in stale:
        _publish(job_id)
    return {"expired": expired, "requeued": len(stale)}


def import_job_for(*, study: Study, job_id: str) -> ImportJob | None:
    """The study's job with this id (any string: None for a malformed one)."""
    try:
        pk = uuid.UUID(job_id)
    except (ValueError, TypeError, AttributeError):
        return None
    return ImportJob.objects.filter(study=study, pk=pk).first()
