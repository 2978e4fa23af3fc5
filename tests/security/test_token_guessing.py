"""Guessing participant tokens: 128+ bits each, and 429 after 30 misses from one address."""

import math
import secrets
import socket
import string
import time
from collections import Counter
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from tests.factories import make_study
from trials.models import Response, Session, Study
from trials.services.enrolment import study_enrol
from trials.tokens import new_token

pytestmark = [pytest.mark.django_db]

ATTACKER = "203.0.113.7"
PARTICIPANT = "198.51.100.20"
SECOND = "203.0.113.99"
URL_SAFE = set(string.ascii_letters + string.digits + "-_")


@pytest.fixture
def study(db: None) -> Study:
    return make_study(slug="guess", n_events=2, arms=("main",), n_timepoints=1)


def guess_url(i: int) -> str:
    """A random, well-formed token on each of the guessable URLs in turn."""
    token = secrets.token_urlsafe(24)
    return [f"/t/{token}/", f"/r/{token}/", f"/api/v1/sessions/{token}"][i % 3]


def test_thirty_misses_then_429_and_other_addresses_are_unaffected(
    study: Study, settings: Any
) -> None:
    settings.PARTICIPANT_MISS_LIMIT = 30
    settings.PARTICIPANT_MISS_WINDOW_S = 300
    enrolment = study_enrol(study=study)
    token = enrolment.session.token
    attacker = Client(REMOTE_ADDR=ATTACKER)

    codes = [attacker.get(guess_url(i)).status_code for i in range(30)]
    assert codes == [404] * 30

    # The 31st guess is refused before any lookup, on every participant URL and method.
    api = attacker.get(f"/api/v1/sessions/{secrets.token_urlsafe(24)}")
    assert api.status_code == 429
    assert api.json()["error"]["code"] == "throttled"
    assert set(api.json()["error"]) >= {"code", "message", "fields"}
    assert 1 <= int(api["Retry-After"]) <= 301
    page = attacker.get(f"/t/{secrets.token_urlsafe(24)}/")
    assert page.status_code == 429
    assert page["Content-Type"].startswith("text/html")
    assert b"Please wait" in page.content
    assert "Content-Security-Policy" in page
    post = attacker.post(
        f"/api/v1/sessions/{token}/responses", data="{}", content_type="application/json"
    )
    assert post.status_code == 429  # a right token from a blocked address gives nothing away
    assert attacker.get(f"/r/{enrolment.participant.token}/").status_code == 429

    # Another address with a real token is served as if nothing happened.
    participant = Client(REMOTE_ADDR=PARTICIPANT)
    assert participant.get(f"/t/{token}/").status_code == 200
    state = participant.get(f"/api/v1/sessions/{token}")
    assert state.status_code == 200
    assert participant.get(f"/r/{enrolment.participant.token}/").status_code in (200, 302)
    # Pages that are not participant URLs are never throttled.
    assert attacker.get("/api/v1/schema/").status_code == 200
    assert Response.objects.count() == 0


def test_hits_never_count(study: Study, settings: Any) -> None:
    settings.PARTICIPANT_MISS_LIMIT = 5
    token = study_enrol(study=study).session.token
    client = Client(REMOTE_ADDR=PARTICIPANT)
    for _ in range(50):
        assert client.get(f"/api/v1/sessions/{token}").status_code == 200
    assert client.get(f"/t/{token}/").status_code == 200
    # A stale step (409) or a bad body (400) is not a miss either.
    for _ in range(10):
        bad = client.post(
            f"/api/v1/sessions/{token}/responses", data="{}", content_type="application/json"
        )
        assert bad.status_code == 400
    assert [client.get(guess_url(i)).status_code for i in range(5)] == [404] * 5
    assert client.get(guess_url(5)).status_code == 429


def test_the_block_ends_with_the_window(study: Study, settings: Any) -> None:
    settings.PARTICIPANT_MISS_LIMIT = 3
    settings.PARTICIPANT_MISS_WINDOW_S = 1
    client = Client(REMOTE_ADDR=ATTACKER)
    assert [client.get(guess_url(i)).status_code for i in range(3)] == [404] * 3
    assert client.get(guess_url(3)).status_code == 429
    time.sleep(2.1)
    assert client.get(guess_url(4)).status_code == 404


def test_a_limit_of_zero_switches_the_throttle_off(study: Study, settings: Any) -> None:
    settings.PARTICIPANT_MISS_LIMIT = 0
    client = Client(REMOTE_ADDR=ATTACKER)
    assert [client.get(guess_url(i)).status_code for i in range(40)] == [404] * 40


def test_forwarded_for_is_honoured_only_behind_trusted_proxies(study: Study, settings: Any) -> None:
    settings.PARTICIPANT_MISS_LIMIT = 3
    # No trusted proxy: a forged X-Forwarded-For does not give a fresh counter.
    settings.TRUSTED_PROXY_COUNT = 0
    for i in range(3):
        forged = Client(REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")
        assert forged.get(guess_url(i)).status_code == 404
    assert (
        Client(REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR="10.9.9.9").get(guess_url(3)).status_code
        == 429
    )

    # One trusted proxy (every request comes from 127.0.0.1): the address it appended counts,
    # and what the client wrote to the left of it does not.
    settings.TRUSTED_PROXY_COUNT = 1
    for i in range(3):
        behind = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"1.2.3.{i}, {SECOND}")
        assert behind.get(guess_url(i)).status_code == 404
    spoofed = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"9.9.9.9, {SECOND}")
    assert spoofed.get(guess_url(4)).status_code == 429
    token = study_enrol(study=study).session.token
    other = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=PARTICIPANT)
    assert other.get(f"/api/v1/sessions/{token}").status_code == 200


def test_tokens_carry_at_least_128_bits(study: Study) -> None:
    tokens = [new_token() for _ in range(1000)]
    assert len(set(tokens)) == 1000
    assert {len(t) for t in tokens} == {32}
    assert set("".join(tokens)) <= URL_SAFE
    # Shannon entropy of the characters over 32,000 draws: ~6 bits (64 symbols) each.
    counts = Counter("".join(tokens))
    total = sum(counts.values())
    per_char = -sum(n / total * math.log2(n / total) for n in counts.values())
    assert len(counts) == 64
    assert per_char > 5.95
    assert per_char * 32 >= 128 * 1.45  # 192 bits nominal; far above 128
    # The tokens the platform hands out are these.
    enrolment = study_enrol(study=study)
    for token in (enrolment.session.token, enrolment.participant.token):
        assert len(token) == 32 and set(token) <= URL_SAFE
    assert Session.objects.filter(token=enrolment.session.token).count() == 1


def test_a_dead_cache_never_takes_the_task_down(study: Study, settings: Any) -> None:
    """Redis down: the throttles let everything through (logged) instead of answering 500."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]  # nothing listens there once the socket closes
    dead = {
        "default": {
            "BACKEND": "common.cache.ReusingRedisCache",  # the production backend
            "LOCATION": f"redis://127.0.0.1:{closed_port}/0",
        }
    }
    settings.PARTICIPANT_MISS_LIMIT = 3
    settings.LOGIN_FAILURE_LIMIT = 2
    enrolment = study_enrol(study=study)
    User.objects.create_user("carol", password="carol-password-1")
    client = Client(REMOTE_ADDR=ATTACKER)
    # A context, not the settings fixture: the cache is live again before conftest clears it.
    with override_settings(CACHES=dead):
        assert [client.get(guess_url(i)).status_code for i in range(6)] == [404] * 6
        assert client.get(f"/t/{enrolment.session.token}/").status_code == 200
        assert client.get(f"/api/v1/sessions/{enrolment.session.token}").status_code == 200
        for _ in range(3):
            wrong = client.post("/accounts/login/", {"username": "carol", "password": "x"})
            assert wrong.status_code == 200
        right = client.post(
            "/accounts/login/", {"username": "carol", "password": "carol-password-1"}
        )
        assert right.status_code == 302
