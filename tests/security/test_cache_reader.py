"""The Redis cache's own reading connection (common.cache): the same values as Django's.

`get` (the participant throttle's read on every participant request) uses a connection of
the cache client's own instead of redis-py's command path. Against a real Redis: it reads
what Django's client reads, reopens a connection the server closed, gives a hung Redis at
most its socket timeout, raises when Redis is gone (the throttles then fail open), and the
throttle still blocks a guesser with it.
"""

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache.backends.redis import RedisCacheClient
from django.test import Client, override_settings

from common.cache import ReusingRedisCache
from tests.factories import make_study
from trials.models import Response
from trials.services.enrolment import study_enrol

pytestmark = [pytest.mark.services]

BACKEND = "common.cache.ReusingRedisCache"


@pytest.fixture
def url(redis_url: str) -> Iterator[str]:
    base = redis_url.rsplit("/", 1)[0]
    own = f"{base}/9"  # a db of this test's own on the helper's Redis
    redis.Redis.from_url(own).flushdb()
    yield own
    redis.Redis.from_url(own).flushdb()


def _cache(url: str, **options: Any) -> ReusingRedisCache:
    return ReusingRedisCache(url, {"OPTIONS": options})


def test_get_reads_what_djangos_client_reads(url: str) -> None:
    cache = _cache(url)
    values: dict[str, Any] = {
        "int": 7,
        "text": "é-value",
        "dict": {"a": [1, 2.5, None]},
        "float": 1733140800.25,
    }
    for key, value in values.items():
        cache.set(key, value, timeout=60)
    cache.incr("int")
    plain = RedisCacheClient([url])
    for key in values:
        full = cache.make_and_validate_key(key)
        assert cache._cache.get(full, "absent") == plain.get(full, "absent")
    assert cache.get("int") == 8
    assert cache.get("text") == "é-value"
    assert cache.get("dict") == {"a": [1, 2.5, None]}
    assert cache.get("float") == 1733140800.25
    assert cache.get("nothing", "default") == "default"
    assert cache.get("nothing") is None
    # One connection of its own, reused: no new client per call.
    reader = cache._cache._reader()
    cache.get("int")
    assert cache._cache._reader() is reader


def test_a_connection_the_server_closed_is_reopened_once(url: str) -> None:
    cache = _cache(url)
    cache.set("k", 41, timeout=60)
    assert cache.get("k") == 41
    admin = redis.Redis.from_url(url)
    killed = admin.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    assert cache.get("k") == 41  # reopened, not an error
    assert cache.get("k") == 41


def test_a_hung_redis_costs_at_most_the_socket_timeout() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        accepted: list[socket.socket] = []

        def accept() -> None:
            conn, _ = server.accept()  # accepts, then never answers
            accepted.append(conn)

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        cache = _cache(f"redis://127.0.0.1:{port}/0", socket_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            cache.get("k")
        assert time.monotonic() - started < 1.0  # one timeout, no retry
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()


def test_no_redis_raises_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    cache = _cache(f"redis://127.0.0.1:{closed_port}/0")
    with pytest.raises(redis.ConnectionError):
        cache.get("k")


@pytest.mark.django_db
def test_the_throttle_blocks_with_it(url: str, settings: Any, postgres: None) -> None:
    settings.PARTICIPANT_MISS_LIMIT = 3
    study = make_study(slug="reader", n_events=2, arms=("main",), n_timepoints=1)
    token = study_enrol(study=study).session.token
    caches = {"default": {"BACKEND": BACKEND, "LOCATION": url}}
    with override_settings(CACHES=caches):
        attacker = Client(REMOTE_ADDR="203.0.113.8")
        codes = [attacker.get(f"/api/v1/sessions/{'x' * 31}{i}").status_code for i in range(3)]
        assert codes == [404, 404, 404]
        blocked = attacker.post(
            f"/api/v1/sessions/{token}/responses", data="{}", content_type="application/json"
        )
        assert blocked.status_code == 429
        assert 1 <= int(blocked["Retry-After"]) <= 301
        other = Client(REMOTE_ADDR="198.51.100.21").get(f"/api/v1/sessions/{token}")
        assert other.status_code == 200
    assert redis.Redis.from_url(url).get(":1:throttle:participant-miss:203.0.113.8:n") == b"3"
    assert not Response.objects.exists()
