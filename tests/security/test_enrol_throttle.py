"""The consent form and the enrol API share one enrolment budget per address (120/min).

Counted in a real Redis (a database of this module's own on TEST_REDIS_URL's server).
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import cache
from django.test import Client

from tests.factories import make_study
from tests.scoring.pipeline_fixtures import redis_db_url
from trials.models import Participant

pytestmark = [pytest.mark.django_db]

THROTTLE_REDIS_DB = 9


@pytest.fixture
def redis_cache(settings: Any, redis_url: str) -> Iterator[str]:
    """Django's cache on a real Redis database, flushed before and after."""
    url = redis_db_url(redis_url, THROTTLE_REDIS_DB)
    redis.Redis.from_url(url).flushdb()
    settings.CACHES = {"default": {"BACKEND": "common.cache.ReusingRedisCache", "LOCATION": url}}
    yield url
    cache.clear()


def form_post(client: Client, slug: str, **extra: str) -> Any:
    return client.post(f"/s/{slug}/", {"consent": "yes", **extra})


def api_post(client: Client, slug: str) -> Any:
    return client.post(
        f"/api/v1/studies/{slug}/enrol",
        data=json.dumps({"consent": True}),
        content_type="application/json",
    )


def test_consent_form_is_throttled_like_the_api_and_shares_its_budget(redis_cache: str) -> None:
    study = make_study(slug="busy", n_events=2, n_timepoints=1)
    client = Client()
    for i in range(60):
        assert api_post(client, "busy").status_code == 201, i
        assert form_post(client, "busy").status_code == 302, i
    assert Participant.objects.filter(study=study).count() == 120

    refused = form_post(client, "busy", PROLIFIC_PID="a" * 24)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "Please wait a minute and try again." in refused.content.decode()
    api_refused = api_post(client, "busy")
    assert api_refused.status_code == 429
    assert api_refused.json()["error"]["code"] == "throttled"
    assert Participant.objects.filter(study=study).count() == 120

    # Another address has its own budget.
    other = Client(REMOTE_ADDR="10.0.0.2")
    assert form_post(other, "busy").status_code == 302
    assert Participant.objects.filter(study=study).count() == 121


def test_consent_form_in_french_says_so_in_french(redis_cache: str) -> None:
    make_study(slug="occupee", n_events=2, n_timepoints=1, languages=["fr"])
    client = Client()
    for _ in range(120):
        assert api_post(client, "occupee").status_code == 201
    refused = form_post(client, "occupee", lang="fr")
    assert refused.status_code == 429
    assert "Veuillez patienter une minute" in refused.content.decode()
