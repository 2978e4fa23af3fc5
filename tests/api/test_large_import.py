"""Imports too large for a request (issue 14.5): a worker checks and stores them.

In-process part: IMPORT_ASYNC_BYTES lowered so that the small golden file takes the large
path, the task run eagerly once the request's transaction commits. The full-stack part (a
20 MB file through the web server, a Celery worker, PostgreSQL and Redis) is at the end.
"""

# ruff: noqa: F811 - the stack fixtures are imported from pipeline_fixtures and used as arguments

import os
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from scoring.models import Score
from tests.api.conftest import Researchers
from tests.api.test_imports import GOOD, URL, _counts
from tests.scoring.pipeline_fixtures import (  # noqa: F401 - fixtures of the stack test
    module_stack,
    own_stack,
    pipeline_redis,
)
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


def test_the_hung_request_limit_leaves_room_for_the_longest_legitimate_request() -> None:
    """The server's limit (gunicorn's default of 30 s once killed 9 MB imports): 120 s unless
    WEB_TIMEOUT says otherwise, on what the production server runs."""
    from belief_web.wsgi import served

    assert "WEB_TIMEOUT" not in os.environ
    assert served.timeout == 120


# --------------------------------------------------------------- the whole stack

EXPORT_HEADER = (
    "study,participant,arm,timepoint,session,list,event,event_code,block1_position,"
    "block2_position,e1,ebr1,br,br_mode,e2,ebr2,confidence,memory,vividness,familiarity,"
    "experience,arousal,negativity,valence,ee,update,excluded,exclusion_reason,rt_e1_ms,"
    "rt_e2_ms\n"
)
N_EVENTS = 40


def export_like_file(max_bytes: int, *, bad_row: int | None = None) -> tuple[bytes, int]:
    """A trials-export-shaped file of whole 40-event sessions, as large as fits in max_bytes;
    returns it and its number of participants. bad_row: that row's e1 is not a number."""
    rows: list[str] = []
    size = len(EXPORT_HEADER)
    participants = 0
    while True:
        session = []
        for i in range(1, N_EVENTS + 1):
            p = participants
            br = 20 + 10 * ((i - 1) % 5)
            e1, e2 = 5 + (p + 3 * i) % 70, 5 + (p + 5 * i) % 70
            session.append(
                f"lab,LAB-{p:06d},patients,baseline,,,Event A{i} of the lab computer's list,"
                f"A{i:02d},{i},{N_EVENTS + 1 - i},{e1},,{br},fixed,{e2},,,,,,,,,,,,false,,"
                f"{1000 + (p * 7 + i) % 4000},{900 + (p * 11 + i) % 3000}\n"
            )
        chunk = sum(len(line) for line in session)
        if size + chunk > max_bytes:
            break
        rows.extend(session)
        size += chunk
        participants += 1
    if bad_row is not None:
        cells = rows[bad_row - 2].split(",")
        cells[10] = "4O"  # a letter O for a zero
        rows[bad_row - 2] = ",".join(cells)
    return (EXPORT_HEADER + "".join(rows)).encode(), participants


def _poll(http: Any, url: str, headers: dict[str, str], timeout: float) -> list[dict[str, Any]]:
    """GET the status URL until the import finishes; every answer, in order."""
    import time

    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        answer = http.get(url, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        seen.append(answer.json())
        if seen[-1]["state"] in ("done", "failed"):
            assert "Retry-After" not in answer.headers
            return seen
        assert answer.headers["Retry-After"] == "2"
        assert time.monotonic() < deadline, f"not finished after {timeout} s: {seen[-1]}"
        time.sleep(1)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_20_mb_file_imports_through_the_web_server_and_a_celery_worker(
    postgres: None, redis_url: str, own_stack: Any
) -> None:
    """The production web server (its own request limit, none of the test's), a prefork
    worker, the test database and Redis: a 3 MB file with one bad row stores nothing and
    names the row; a 20 MB file (167,560 rows) is stored whole, with exact counts."""
    import time

    import requests

    from tests.api.conftest import make_researchers
    from tests.factories import make_study
    from trials.models import Participant, ParticipantIdentity, Response, Trial
    from trials.services.imports import IMPORT_MAX_BYTES

    study = make_study(
        slug="lab", n_events=N_EVENTS, n_timepoints=1, arms=("patients",), n_practice=0
    )
    people = make_researchers(study, make_study(slug="elsewhere", n_events=4))
    web = own_stack.web()
    worker = own_stack.worker()
    own_stack.ready(web, worker, timeout=120)
    http = requests.Session()
    owner = {"Authorization": f"Bearer {people.tokens['owner']}"}
    url = f"{web.url}/api/v1/studies/lab/imports/"

    def counts() -> tuple[int, ...]:
        return (
            Participant.objects.filter(study=study).count(),
            ParticipantIdentity.objects.filter(study=study).count(),
            Session.objects.filter(participant__study=study).count(),
            Trial.objects.filter(session__participant__study=study).count(),
            Response.objects.filter(session__participant__study=study).count(),
        )

    # 1. Over 2 MB with one bad row (near the end): refused whole, the row named.
    bad, _ = export_like_file(3 * 1024 * 1024, bad_row=17_001)
    posted = http.post(url, data=bad, headers={**owner, "Content-Type": "text/csv"}, timeout=60)
    assert posted.status_code == 202, posted.text
    failed = _poll(http, posted.headers["Location"], owner, timeout=300)[-1]
    assert failed["error"] == {
        "code": "invalid_file",
        "message": "1 error(s): nothing was imported.",
        "fields": {},
        "rows": [{"row": 17_001, "column": "e1", "message": "'4O' is not a number."}],
    }
    assert failed["result"] is None
    assert counts() == (0, 0, 0, 0, 0)
    assert not ImportUpload.objects.exists()

    # 2. The 20 MB file, multipart as a browser or requests sends it.
    data, participants = export_like_file(IMPORT_MAX_BYTES)
    assert 20_000_000 < len(data) <= IMPORT_MAX_BYTES and participants == 4_189
    started = time.monotonic()
    posted = http.post(
        url, files={"file": ("lab.csv", data, "text/csv")}, headers=owner, timeout=120
    )
    answered = time.monotonic() - started
    assert posted.status_code == 202, posted.text
    before = posted.json()
    assert before["state"] == "queued" and before["result"] is None
    assert before["size"] == len(data) and posted.headers["Location"] == before["status_url"]
    # Another lab's researcher: the 404 of an id that does not exist.
    stranger = {"Authorization": f"Bearer {people.tokens['other_owner']}"}
    theirs = http.get(before["status_url"], headers=stranger, timeout=30)
    unknown = http.get(f"{url}{uuid.uuid4()}/", headers=owner, timeout=30)
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.content == unknown.content
    seen = _poll(http, before["status_url"], owner, timeout=540)
    took = time.monotonic() - started
    after = seen[-1]
    assert after["state"] == "done", after["error"]
    assert after["error"] is None
    rows = participants * N_EVENTS
    assert after["progress"] == {"done": rows, "total": rows}
    checked = [s["progress"]["done"] for s in seen]
    assert checked == sorted(checked)
    result = after["result"]
    assert len(result.pop("session_ids")) == participants
    assert result == {
        "participants": participants,
        "sessions": participants,
        "trials": rows,
        "responses": rows * 3,
    }
    assert counts() == (participants, participants, participants, rows, rows * 3)
    assert not ImportUpload.objects.exists()
    last = participants - 1
    e1 = Response.objects.get(
        session__participant__identity__external_id=f"LAB-{last:06d}",
        event__code="A40",
        phase="e1",
    )
    assert (e1.value, e1.rt_ms) == (5 + (last + 120) % 70, 1000 + (last * 7 + 40) % 4000)
    print(f"20 MB import: 202 after {answered:.1f} s, done after {took:.1f} s")


def _readme_snippet() -> str:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("## Import sessions run elsewhere", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


@pytest.mark.django_db(transaction=True)
def test_the_readme_import_snippet_polls_to_the_result(
    live_server: Any, settings: Any, tmp_path: Any
) -> None:
    from tests.api.conftest import golden_study, make_researchers
    from tests.factories import make_study

    people = make_researchers(golden_study(), make_study(slug="elsewhere"))
    code = _readme_snippet().replace("http://127.0.0.1:8000", live_server.url)
    code = code.replace("PASTE-YOUR-WRITE-TOKEN-HERE", people.tokens["analyst"])
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(GOOD)
    bad.write_text(BAD.replace("LAB-1,", "LAB-9,"))
    settings.IMPORT_ASYNC_BYTES = 100
    result = namespace["import_file"]("golden", str(good))
    assert len(result.pop("session_ids")) == 2 and result == GOOD_RESULT
    assert ImportJob.objects.get().state == "done"
    with pytest.raises(RuntimeError) as refused:
        namespace["import_file"]("golden", str(bad))
    assert refused.value.args[0]["rows"] == [
        {"row": 11, "column": "e1", "message": "'5x' is not a number."}
    ]
    settings.IMPORT_ASYNC_BYTES = 2 * 1024 * 1024
    with pytest.raises(RuntimeError) as small:
        namespace["import_file"]("golden", str(bad))
    assert small.value.args[0] == refused.value.args[0]
