"""The pool's checkout check (common/postgresql/base.py) against a real PostgreSQL.

A healthy connection is passed without a query; one the server closed (terminated, as a
restart does to every backend) is refused, so the pool replaces it before a request uses it.
Django builds the pool; the backend swaps the check on the pool Django built.
"""

import copy
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool

from common.postgresql.base import DatabaseWrapper, socket_first_check

pytestmark = [pytest.mark.usefixtures("postgres")]


def _dsn() -> str:
    """The tests' PostgreSQL server, its maintenance database (no table is needed)."""
    url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    return make_conninfo(url, dbname="postgres")


def _terminate(pid: int) -> None:
    with psycopg.connect(_dsn(), autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
        deadline = time.monotonic() + 5
        while admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]
        ).fetchone() != (0,):
            assert time.monotonic() < deadline
            time.sleep(0.02)
    time.sleep(0.1)  # the FATAL notice and the end of the stream reach the client's socket


def test_a_healthy_connection_passes_without_a_round_trip(monkeypatch: Any) -> None:
    def no_query(conn: Any) -> None:
        raise AssertionError("a round trip")

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(no_query))
    with psycopg.connect(_dsn(), autocommit=True) as conn:
        conn.execute("SELECT 1")
        for _ in range(3):
            socket_first_check(conn)  # no exception: nothing was sent


def test_a_connection_the_server_terminated_is_refused() -> None:
    with psycopg.connect(_dsn(), autocommit=True) as victim:
        _terminate(victim.info.backend_pid)
        with pytest.raises(psycopg.OperationalError):
            socket_first_check(victim)


def test_a_closed_connection_is_refused() -> None:
    conn = psycopg.connect(_dsn(), autocommit=True)
    conn.close()
    with pytest.raises(psycopg.OperationalError):
        socket_first_check(conn)


@pytest.fixture
def pooled(django_db_blocker: Any) -> Iterator[DatabaseWrapper]:
    """A second Django connection, through the backend's pool of one (no table is read)."""
    settings_dict = copy.deepcopy(connection.settings_dict)
    settings_dict["NAME"] = "postgres"  # the maintenance database: no table is read
    settings_dict["OPTIONS"]["pool"] = {"min_size": 1, "max_size": 1, "timeout": 5}
    settings_dict.update(CONN_MAX_AGE=0, CONN_HEALTH_CHECKS=True, POOL_CHECK="socket")
    wrapper = DatabaseWrapper(settings_dict, alias="pool_check_test")
    with django_db_blocker.unblock():
        try:
            yield wrapper
        finally:
            wrapper.close()
            wrapper.close_pool()


def _backend_pid(wrapper: DatabaseWrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    wrapper.close()  # back to the pool, as at the end of a request
    return int(pid)


def test_djangos_pool_uses_the_socket_check(pooled: DatabaseWrapper) -> None:
    assert pooled.pool is not None
    assert pooled.pool._check is socket_first_check


def test_djangos_pool_replaces_a_terminated_connection_before_a_request_uses_it(
    pooled: DatabaseWrapper,
) -> None:
    first = _backend_pid(pooled)
    assert _backend_pid(pooled) == first  # a healthy connection is reused
    _terminate(first)
    second = _backend_pid(pooled)  # no error: the dead one was dropped at checkout
    assert second != first


@pytest.mark.parametrize(
    ("env", "checks", "pool_check"),
    [("", True, "socket"), ("1", True, "socket"), ("full", True, "full"), ("0", False, "socket")],
)
def test_the_settings_choose_the_check(env: str, checks: bool, pool_check: str) -> None:
    code = (
        "import belief_web.settings as s; d = s.DATABASES['default']; "
        "print(d['ENGINE'], d['CONN_HEALTH_CHECKS'], d['POOL_CHECK'])"
    )
    environ = {
        **os.environ,
        "DB_POOL": "1",
        "DATABASE_URL": "postgres://u@127.0.0.1:5432/x",
        "SECRET_KEY": "k" * 50,
    }
    environ.pop("DB_POOL_CHECK", None)
    if env:
        environ["DB_POOL_CHECK"] = env
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=environ,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["common.postgresql", str(checks), pool_check]
