"""Login brute force: 10 failures per (address, username) in 15 minutes lock the pair."""

import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = [pytest.mark.django_db]

ATTACKER = "203.0.113.7"
WAIT_MESSAGE = "Too many failed log-ins for this username. Please wait"
WRONG_LINE = "The username or the password is not right"


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", password="right-password-1")


def login(client: Client, username: str, password: str) -> Any:
    return client.post(
        "/accounts/login/", {"username": username, "password": password, "next": "/dashboard/"}
    )


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_ten_failures_lock_even_the_right_password(alice: User, settings: Any) -> None:
    settings.LOGIN_FAILURE_LIMIT = 10
    settings.LOGIN_FAILURE_WINDOW_S = 900
    client = Client(REMOTE_ADDR=ATTACKER)
    for i in range(9):
        response = login(client, "alice", f"guess-{i}")
        assert response.status_code == 200
        assert WRONG_LINE in response.content.decode()
    tenth = login(client, "alice", "guess-9")
    assert tenth.status_code == 429
    assert WAIT_MESSAGE in tenth.content.decode()
    assert 850 <= int(tenth["Retry-After"]) <= 901

    # Locked: the right password is refused like any other, and the user is not logged in.
    right = login(client, "Alice ", "right-password-1")  # case and spaces do not escape it
    assert right.status_code == 429
    assert WAIT_MESSAGE in right.content.decode()
    assert "15 minutes" in right.content.decode()
    assert not logged_in(client)
    assert client.get("/dashboard/").status_code == 302

    # The lock is per (address, username): alice elsewhere and bob here log in.
    elsewhere = Client(REMOTE_ADDR="198.51.100.20")
    assert login(elsewhere, "alice", "right-password-1").status_code == 302
    assert logged_in(elsewhere)
    User.objects.create_user("bob", password="bob-password-1")
    assert login(client, "bob", "bob-password-1").status_code == 302
    # The GET of the form is never refused (a page, not an attempt).
    assert Client(REMOTE_ADDR=ATTACKER).get("/accounts/login/").status_code == 200


def test_the_lock_ends_and_success_resets_the_count(alice: User, settings: Any) -> None:
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.LOGIN_FAILURE_WINDOW_S = 900
    settings.LOGIN_LOCK_S = 1
    client = Client(REMOTE_ADDR=ATTACKER)
    assert [login(client, "alice", "x").status_code for _ in range(3)] == [200, 200, 429]
    assert login(client, "alice", "right-password-1").status_code == 429
    time.sleep(2.1)
    assert login(client, "alice", "right-password-1").status_code == 302
    assert logged_in(client)

    # A success starts the count again: two failures after it are not a lock.
    fresh = Client(REMOTE_ADDR=ATTACKER)
    assert [login(fresh, "alice", "x").status_code for _ in range(2)] == [200, 200]
    assert login(fresh, "alice", "right-password-1").status_code == 302


def test_the_admin_login_is_locked_the_same_way(db: None, settings: Any) -> None:
    settings.LOGIN_FAILURE_LIMIT = 3
    User.objects.create_superuser("root", password="root-password-1")
    client = Client(REMOTE_ADDR=ATTACKER)
    page = client.get("/admin/login/?next=/admin/")
    assert page.status_code == 200 and 'id="login-form"' in page.content.decode()

    def attempt(password: str) -> Any:
        return client.post(
            "/admin/login/?next=/admin/",
            {"username": "root", "password": password, "next": "/admin/"},
        )

    assert [attempt("x").status_code for _ in range(3)] == [200, 200, 429]
    locked = attempt("root-password-1")
    assert locked.status_code == 429
    assert WAIT_MESSAGE in locked.content.decode()
    assert not logged_in(client)
    # Elsewhere the staff login works, and lands in the admin.
    other = Client(REMOTE_ADDR="198.51.100.20")
    ok = other.post(
        "/admin/login/?next=/admin/",
        {"username": "root", "password": "root-password-1", "next": "/admin/"},
    )
    assert ok.status_code == 302 and ok["Location"] == "/admin/"
    assert other.get("/admin/").status_code == 200
    assert other.get("/admin/login/").status_code == 302  # logged in: straight to the index


SPRAY_MESSAGE = "Too many failed log-ins from this address. Please wait"


def test_spraying_many_usernames_from_one_address_is_locked(
    alice: User, settings: Any, redis_url: str
) -> None:
    """One guess at each of many usernames: the address is locked, for every username.

    Counted in a real Redis (a database of this test's own), as in production.
    """
    import redis

    from tests.scoring.pipeline_fixtures import redis_db_url

    url = redis_db_url(redis_url, 8)
    redis.Redis.from_url(url).flushdb()
    settings.CACHES = {"default": {"BACKEND": "common.cache.ReusingRedisCache", "LOCATION": url}}
    settings.LOGIN_FAILURE_LIMIT = 10
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 30
    settings.LOGIN_FAILURE_WINDOW_S = 900
    try:
        client = Client(REMOTE_ADDR=ATTACKER)
        for i in range(29):
            response = login(client, f"user-{i}", "Summer2026!")
            assert response.status_code == 200, i
            assert WRONG_LINE in response.content.decode()
        thirtieth = login(client, "user-29", "Summer2026!")
        assert thirtieth.status_code == 429
        assert SPRAY_MESSAGE in thirtieth.content.decode()
        assert 850 <= int(thirtieth["Retry-After"]) <= 901
        # Every username is locked from this address, alice's right password included...
        right = login(client, "alice", "right-password-1")
        assert right.status_code == 429
        assert SPRAY_MESSAGE in right.content.decode()
        assert not logged_in(client)
        # ...and only from this address.
        elsewhere = Client(REMOTE_ADDR="198.51.100.20")
        assert login(elsewhere, "alice", "right-password-1").status_code == 302
    finally:
        redis.Redis.from_url(url).flushdb()
