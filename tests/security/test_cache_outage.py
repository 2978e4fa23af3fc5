"""Redis stopped under the real web server: researcher token requests fail open to the database.

The failed-authentication counter lives in the cache; with the cache down the token is
still checked against the database (a wrong one is still refused), only the count is lost.
The Redis here is a throw-away redis-server of this test's own, on a free port, killed
mid-test (the shared one is never touched).
"""

# ruff: noqa: F811 - db_stack is a fixture of pipeline_fixtures, used as an argument

import pytest
import requests
from django.contrib.auth.models import User

from accounts.services import token_create
from tests.factories import make_study
from tests.scoring.pipeline_fixtures import (
    Stack,
    db_stack,  # noqa: F401 - a fixture
    free_port,
)
from trials.models import StudyMembership

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_token_requests_survive_redis_stopped(db_stack: Stack, redis_url: str) -> None:
    study = make_study(slug="cached")
    user = User.objects.create_user("ana")
    StudyMembership.objects.create(study=study, user=user, role="owner")
    key = token_create(user=user).key
    port = free_port()
    redis_proc = db_stack.redis_server(port)
    db_stack.ready(redis_proc)
    web = db_stack.web(workers=1, REDIS_URL=f"redis://127.0.0.1:{port}/0")
    db_stack.ready(web)
    good = {"Authorization": f"Bearer {key}"}
    bad = {"Authorization": "Bearer not-a-token"}

    up = requests.get(f"{web.url}/api/v1/studies/", headers=good, timeout=10)
    assert up.status_code == 200, up.text
    assert [s["slug"] for s in up.json()["results"]] == ["cached"]

    db_stack.kill(redis_proc)
    for path in ("/api/v1/studies/", "/api/v1/studies/cached/", "/api/v1/studies/cached/trials/"):
        down = requests.get(web.url + path, headers=good, timeout=10)
        assert down.status_code == 200, (path, down.status_code, down.text[:300])
    assert requests.get(f"{web.url}/api/v1/studies/", headers=good, timeout=10).json() == up.json()
    refused = requests.get(f"{web.url}/api/v1/studies/", headers=bad, timeout=10)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_token"
    assert "api auth throttle: cache unavailable" in web.text()
