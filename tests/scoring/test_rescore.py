"""Rescore with real processes: the web server, a Celery worker, Redis and PostgreSQL.

Attempts count the starts of one scoring (a rescore sets them back to 0), so rescoring never
adds up to the smallint's end; a rescore request while one of the study runs is
answered with it and queues nothing; requests are rate-limited per researcher.
"""

# ruff: noqa: F811 - the fixtures are imported from pipeline_fixtures and used as arguments

from datetime import datetime

import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client

from accounts.services import token_create
from audit.models import AuditEntry
from scoring.models import Score
from tests.factories import make_study
from tests.scoring.pipeline_fixtures import (  # noqa: F401 - fixtures
    Stack,
    django_call,
    module_stack,
    own_stack,
    pipeline_redis,
    session_answer_all,
    session_id_of,
)
from trials.models import StudyMembership

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def scores_of(ids: list[int]) -> list[tuple[str, int, datetime | None]]:
    rows = Score.objects.filter(session_id__in=ids).order_by("session_id")
    return [(s.status, s.attempts, s.scored_at) for s in rows]


def test_rescore_is_idempotent_while_it_runs_counts_no_attempts_and_is_throttled(
    postgres: None, own_stack: Stack
) -> None:
    study = make_study(slug="rescored", n_events=8, n_timepoints=1, arms=("patients",))
    client = Client()
    ids = []
    for _ in range(3):
        token = session_answer_all(django_call(client), "rescored")
        assert client.post(f"/api/v1/sessions/{token}/complete").status_code == 200
        ids.append(session_id_of(token))
    # Scored in the request here (no broker in the test process): one start each.
    assert [(status, attempts) for status, attempts, _ in scores_of(ids)] == [("done", 1)] * 3
    analyst = User.objects.create_user("ana")
    StudyMembership.objects.create(study=study, user=analyst, role="analyst")
    headers = {"Authorization": f"Bearer {token_create(user=analyst, scope='write').key}"}

    web = own_stack.web(workers=1)
    own_stack.ready(web)
    url = f"{web.url}/api/v1/studies/rescored/rescore"

    first = requests.post(url, headers=headers, timeout=10)
    assert first.status_code == 202, first.text
    body = first.json()
    assert {k: body[k] for k in ("sessions", "batches", "running")} == {
        "sessions": 3,
        "batches": 1,
        "running": False,
    }
    # No worker yet: the rescore is still running, so the next request queues nothing.
    again = requests.post(url, headers=headers, timeout=10)
    assert again.status_code == 202
    assert again.json() == {**body, "running": True}
    assert AuditEntry.objects.filter(action="study.rescore").count() == 1

    worker = own_stack.worker()
    own_stack.ready(worker)
    started = datetime.fromisoformat(body["requested_at"])

    def rescored() -> bool:
        return all(at is not None and at >= started for _, _, at in scores_of(ids))

    own_stack.wait("the rescore", rescored, timeout=60)
    assert [(status, attempts) for status, attempts, _ in scores_of(ids)] == [("done", 1)] * 3
    assert "score_batch" in worker.text()

    # Finished: a new request starts a new rescore, which again counts one start.
    second = requests.post(url, headers=headers, timeout=10)
    assert second.status_code == 202
    assert second.json()["running"] is False
    later = datetime.fromisoformat(second.json()["requested_at"])
    assert later > started
    own_stack.wait(
        "the second rescore",
        lambda: all(at is not None and at >= later for _, _, at in scores_of(ids)),
        timeout=60,
    )
    assert [(status, attempts) for status, attempts, _ in scores_of(ids)] == [("done", 1)] * 3
    assert AuditEntry.objects.filter(action="study.rescore").count() == 2

    # 10 requests per researcher per hour (3 made): the 11th is refused, nothing queued.
    codes = [requests.post(url, headers=headers, timeout=10).status_code for _ in range(7)]
    assert codes == [202] * 7
    rescores = AuditEntry.objects.filter(action="study.rescore").count()
    refused = requests.post(url, headers=headers, timeout=10)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    assert AuditEntry.objects.filter(action="study.rescore").count() == rescores
