"""Imports too large for a request (issue 14.5): a worker checks and stores them.

In-process part: IMPORT_ASYNC_BYTES lowered so that the small golden file takes the large
path, the task run eagerly once the request's transaction commits. The full-stack part (a
20 MB file through gunicorn, a Celery worker, PostgreSQL and Redis) is at the end.
"""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from scoring.models import Score
from tests.api.conftest import Researchers
from tests.api.test_imports import GOOD, URL, _counts
from trials.models import ImportJob, ImportUpload, Session
from trials.services import import_jobs

pytestmark = pytest.mark.django_db

GOOD_RESULT = {"participants": 2, "sessions": 2, "trials": 13, "responses": 13 * 2 + 12}
BAD = GOOD.replace("LAB-2,controls,+4h,B03,51,", "LAB-2,controls,+4h,B03,5x,")
JOB_KEYS = [
    "id",
    "state",
    "status_url",
    "size",
    "progress",
    "created_at",
    "started_at",
    "finished_at",
    "result",
    "error",
]


@pytest.fixture
def large_from_100_bytes(settings: Any) -> None:
    settings.IMPORT_ASYNC_BYTES = 100


def _post(client: Any, text: str, capture: Any) -> Any:
    with capture(execute=True):
        return client.post(URL, text, content_type="text/csv")


def test_a_large_file_answers_202_then_its_status_gives_the_result(
    researchers: Researchers, large_from_100_bytes: None, django_capture_on_commit_callbacks: Any
) -> None:
    client = researchers.client("analyst")
    before = _counts()
    response = _post(client, GOOD, django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.content
    body = response.json()
    job = ImportJob.objects.get()
    url = f"http://testserver/api/v1/studies/golden/imports/{job.pk}/"
    assert response["Location"] == url and response["Retry-After"] == "2"
    # The answer is the status as it was when the request ended: queued, nothing stored yet.
    assert list(body) == JOB_KEYS
    assert (body["id"], body["state"], body["status_url"], body["size"]) == (
        str(job.pk),
        "queued",
        url,
        len(GOOD.encode()),
    )
    assert body["progress"] == {"done": 0, "total": None}
    assert (body["started_at"], body["finished_at"], body["result"], body["error"]) == (
        None,
        None,
        None,
        None,
    )

    status = client.get(url)
    assert status.status_code == 200 and "Retry-After" not in status
    done = status.json()
    assert (done["state"], done["error"], done["progress"]) == (
        "done",
        None,
        {"done": 13, "total": 13},
    )
    session_ids = done["result"].pop("session_ids")
    assert done["result"] == GOOD_RESULT
    assert done["started_at"] is not None and done["finished_at"] >= done["started_at"]
    after = _counts()
    # participants, identities, sessions, trials, responses, scores
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 2, 2, 13, 38, 2]
    sessions = Session.objects.filter(pk__in=session_ids).order_by("pk")
    assert [s.participant.identity.external_id for s in sessions] == ["LAB-1", "LAB-2"]
    assert [s.status for s in Score.objects.filter(session__in=sessions)] == ["done", "done"]
    assert not ImportUpload.objects.exists()  # the file is deleted once imported
    from audit.models import AuditEntry

    entry = AuditEntry.objects.get(action="trials.import")
    assert (entry.actor_name, entry.detail) == ("analyst", GOOD_RESULT)


def test_a_large_file_with_one_bad_row_stores_nothing_and_reports_the_row(
    researchers: Researchers, large_from_100_bytes: None, django_capture_on_commit_callbacks: Any
) -> None:
    client = researchers.client("owner")
    before = _counts()
    response = _post(client, BAD, django_capture_on_commit_callbacks)
    assert response.status_code == 202
    failed = client.get(response["Location"]).json()
    assert failed["state"] == "failed" and failed["result"] is None
    # The same error as the synchronous answer's (its body's `error`).
    assert failed["error"] == {
        "code": "invalid_file",
        "message": "1 error(s): nothing was imported.",
        "fields": {},
        "rows": [{"row": 11, "column": "e1", "message": "'5x' is not a number."}],
    }
    assert _counts() == before
    assert not ImportUpload.objects.exists()


def test_the_error_is_the_synchronous_answers_error(
    researchers: Researchers, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    client = researchers.client("owner")
    sync = client.post(URL, BAD, content_type="text/csv")
    assert sync.status_code == 400
    settings.IMPORT_ASYNC_BYTES = 100
    job = _post(client, BAD, django_capture_on_commit_callbacks)
    assert client.get(job["Location"]).json()["error"] == sync.json()["error"]


def test_the_status_is_for_members_only_others_get_the_404_of_an_unknown_id(
    researchers: Researchers, large_from_100_bytes: None, django_capture_on_commit_callbacks: Any
) -> None:
    response = _post(researchers.client("owner"), GOOD, django_capture_on_commit_callbacks)
    url = response["Location"].removeprefix("http://testserver")
    unknown = f"/api/v1/studies/golden/imports/{uuid.uuid4()}/"
    not_found = {
        "error": {"code": "not_found", "message": "No such import.", "fields": {}},
    }
    for who, path in [
        ("other_owner", url),
        ("stranger", url),
        ("staff", url),
        ("owner", unknown),
        ("owner", "/api/v1/studies/golden/imports/not-a-uuid/"),
        # The id under another study's slug, even one the caller is a member of.
        ("other_owner", url.replace("/golden/", "/other-study/")),
    ]:
        answer = researchers.client(who).get(path)
        assert (answer.status_code, answer.json()) == (404, not_found), (who, path)
    assert researchers.client("viewer").get(url).status_code == 403
    assert researchers.client(None).get(url).status_code == 401
    for who in ("owner", "analyst"):
        assert researchers.client(who).get(url).json()["state"] == "done"


def test_small_files_still_answer_in_the_request(researchers: Researchers) -> None:
    response = researchers.client("owner").post(
        URL,
        {"file": SimpleUploadedFile("lab.csv", GOOD.encode(), content_type="text/csv")},
        format="multipart",
    )
    assert response.status_code == 201
    assert sorted(response.json()) == sorted([*GOOD_RESULT, "session_ids"])
    assert not ImportJob.objects.exists()


def test_a_redelivered_or_doubled_task_stores_the_file_once(
    researchers: Researchers, large_from_100_bytes: None, django_capture_on_commit_callbacks: Any
) -> None:
    response = _post(researchers.client("owner"), GOOD, django_capture_on_commit_callbacks)
    job = ImportJob.objects.get()
    after = _counts()
    assert import_jobs.import_job_run(str(job.pk)) == "finished"
    assert _counts() == after
    job.refresh_from_db()
    assert (job.state, job.attempts) == ("done", 1)
    assert response.status_code == 202


def test_a_worker_killed_mid_import_runs_it_again_from_the_file(
    researchers: Researchers, large_from_100_bytes: None, django_capture_on_commit_callbacks: Any
) -> None:
    """The message comes back (acks_late) to a job left `running` with its file."""
    from trials.services.imports import trials_import_check

    before = _counts()
    job = import_jobs.import_job_create(
        study=researchers.study, data=GOOD.encode(), actor=researchers.users["owner"]
    )
    ImportJob.objects.filter(pk=job.pk).update(state="running", attempts=1)
    assert import_jobs.import_job_run(str(job.pk)) == "done"
    job.refresh_from_db()
    assert (job.state, job.attempts, job.result["sessions"]) == ("done", 2, 2)
    assert [a - b for a, b in zip(_counts(), before, strict=True)][:5] == [2, 2, 2, 13, 38]
    # A job started too often is given up, with nothing stored.
    again = import_jobs.import_job_create(
        study=researchers.study, data=b"x", actor=researchers.users["owner"]
    )
    ImportJob.objects.filter(pk=again.pk).update(attempts=import_jobs.MAX_ATTEMPTS)
    assert import_jobs.import_job_run(str(again.pk)) == "failed"
    again.refresh_from_db()
    assert again.error["code"] == "import_failed" and not ImportUpload.objects.exists()
    assert trials_import_check  # the check the task runs


def test_the_sweep_queues_lost_jobs_again_and_expires_old_ones(
    researchers: Researchers, django_capture_on_commit_callbacks: Any
) -> None:
    now = timezone.now()
    owner = researchers.users["owner"]
    lost = import_jobs.import_job_create(study=researchers.study, data=GOOD.encode(), actor=owner)
    old = import_jobs.import_job_create(study=researchers.study, data=GOOD.encode(), actor=owner)
    fresh = import_jobs.import_job_create(study=researchers.study, data=GOOD.encode(), actor=owner)
    ImportJob.objects.filter(pk=lost.pk).update(queued_at=now - timedelta(minutes=11))
    ImportJob.objects.filter(pk=old.pk).update(
        state="running", created_at=now - timedelta(hours=25)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert import_jobs.import_jobs_sweep(now=now) == {"expired": 1, "requeued": 1}
    states = dict(ImportJob.objects.values_list("pk", "state"))
    assert states == {lost.pk: "done", old.pk: "failed", fresh.pk: "queued"}
    assert list(ImportUpload.objects.values_list("job_id", flat=True)) == [fresh.pk]
    assert ImportJob.objects.get(pk=old.pk).error["code"] == "import_failed"
