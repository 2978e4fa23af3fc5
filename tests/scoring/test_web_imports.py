"""A web process queues scoring work without loading the numerical stack (issue 15).

A fresh Python process loads the URL configuration (every view module), asks for a rescore
through the API and for the group fit through the results page's poll, both against the
test database and a real Redis broker: the tasks are published, and NumPy, SciPy, pandas
and statsmodels are still not imported. Nothing else can show this: the test process itself
imported them long ago.
"""

import base64
import json
import os
import subprocess
import sys

import pytest
import redis

from accounts.services import token_create
from scoring.selectors import scored_fingerprint
from tests.api.conftest import golden_study
from tests.conftest import need
from tests.scoring.pipeline_fixtures import REPO, database_url, redis_db_url
from trials.models import Session, StudyMembership

# A Redis database of this test's own on the shared server (others: 8-11, 13).
WEB_IMPORTS_REDIS_DB = 14
HEAVY = ("numpy", "scipy", "pandas", "statsmodels")

SCRIPT = """
import json, sys
import django
django.setup()
from django.contrib.auth.models import User
from django.test import Client
from django.urls import get_resolver
get_resolver().url_patterns  # the URL configuration and every view module it names
loaded_by_urls = sorted(m for m in HEAVY if m in sys.modules)
api = Client(HTTP_AUTHORIZATION="Bearer " + TOKEN)
rescore = api.post("/api/v1/studies/golden/rescore")
page = Client()
page.force_login(User.objects.get(username="web-owner"))
model = page.get("/dashboard/s/golden/results/model.json")
print(json.dumps({
    "urls": loaded_by_urls,
    "after": sorted(m for m in HEAVY if m in sys.modules),
    "rescore": [rescore.status_code, rescore.json()],
    "model": [model.status_code, model.json()["status"]],
}))
"""


@pytest.mark.django_db(transaction=True)
def test_queueing_a_rescore_and_a_group_fit_loads_no_numerical_stack(postgres: None) -> None:
    base = os.environ.get("TEST_REDIS_URL", "")
    need("Redis", bool(base))
    broker = redis_db_url(base, WEB_IMPORTS_REDIS_DB)
    queue = redis.Redis.from_url(broker)
    queue.flushdb()
    study = golden_study()
    from django.contrib.auth.models import User

    user = User.objects.create_user("web-owner")
    StudyMembership.objects.create(study=study, user=user, role="owner")
    token = token_create(user=user, scope="write").key
    env = {k: v for k, v in os.environ.items() if not k.startswith("BW_TEST_")}
    env.update(
        DJANGO_SETTINGS_MODULE="belief_web.settings",
        DATABASE_URL=database_url(),
        REDIS_URL=broker,
        DB_POOL="0",
    )
    env.pop("CELERY_BROKER_URL", None)
    code = f"HEAVY = {HEAVY!r}\nTOKEN = {token!r}\n{SCRIPT}"
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", code],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout.strip().splitlines()[-1])
        messages = [json.loads(m) for m in queue.lrange("celery", 0, -1)]
    finally:
        queue.flushdb()
    assert report["urls"] == [] and report["after"] == []
    status, body = report["rescore"]
    assert status == 202, body
    assert (status, body["sessions"], body["batches"], body["running"]) == (
        202,
        8,
        1,
        False,
    )
    assert report["model"] == [200, "fitting"]
    # What was queued: one batch of every completed session, one group fit of the study's
    # scored data.
    queued = sorted(
        (m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in messages
    )
    completed = Session.objects.filter(participant__study=study, status=Session.Status.COMPLETED)
    _n, fingerprint = scored_fingerprint(study=study)
    assert queued == [
        ("dashboard.fit_mixed_model", [study.pk, fingerprint]),
        ("scoring.score_batch", [sorted(completed.values_list("pk", flat=True))]),
    ]
