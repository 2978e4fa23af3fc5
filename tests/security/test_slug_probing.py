"""Study slugs: a paused study's link says nothing about it; probing slugs is throttled.

Counted in a real Redis (a database of this module's own), as in production.
"""

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import cache
from django.test import Client

from tests.factories import make_study
from tests.scoring.pipeline_fixtures import redis_db_url
from trials.models import Participant, Study

pytestmark = [pytest.mark.django_db]

ATTACKER = "203.0.113.7"


@pytest.fixture
def redis_cache(settings: Any, redis_url: str) -> Iterator[None]:
    url = redis_db_url(redis_url, 10)
    redis.Redis.from_url(url).flushdb()
    settings.CACHES = {"default": {"BACKEND": "common.cache.ReusingRedisCache", "LOCATION": url}}
    yield
    cache.clear()


@pytest.mark.parametrize("status", [Study.Status.PAUSED, Study.Status.CLOSED])
def test_a_study_not_open_shows_no_title(status: str) -> None:
    study = make_study(slug="secret-trial", title="Ketamine for treatment-resistant depression")
    Study.objects.filter(pk=study.pk).update(status=status)
    for lang in ("en", "fr"):
        page = Client().get(f"/s/secret-trial/?lang={lang}")
        assert page.status_code == 403
        text = page.content.decode()
        assert "Ketamine" not in text
        assert "Consent text" not in text and "consentement." not in text
    assert "<h1>Inscriptions fermées</h1>" in text
    assert Participant.objects.count() == 0


def test_probing_study_slugs_is_throttled(settings: Any, redis_cache: None) -> None:
    settings.PARTICIPANT_MISS_LIMIT = 30
    settings.PARTICIPANT_MISS_WINDOW_S = 300
    make_study(slug="real-study", n_events=2, n_timepoints=1)
    attacker = Client(REMOTE_ADDR=ATTACKER)
    codes = []
    for i in range(30):
        slug = f"guess-{secrets.token_hex(4)}"
        if i % 2:
            codes.append(attacker.get(f"/s/{slug}/").status_code)
        else:
            codes.append(
                attacker.post(
                    f"/api/v1/studies/{slug}/enrol",
                    data=json.dumps({"consent": True}),
                    content_type="application/json",
                ).status_code
            )
    assert codes == [404] * 30
    # The real slug is refused too now: the prober learns nothing more.
    page = attacker.get("/s/real-study/")
    assert page.status_code == 429
    api = attacker.post(
        "/api/v1/studies/real-study/enrol",
        data=json.dumps({"consent": True}),
        content_type="application/json",
    )
    assert api.status_code == 429
    assert api.json()["error"]["code"] == "throttled"
    assert Participant.objects.count() == 0
    # A participant elsewhere is not affected.
    assert Client(REMOTE_ADDR="198.51.100.20").get("/s/real-study/").status_code == 200
