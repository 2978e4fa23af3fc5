"""The pool's checkout check (common.db.pool_check) against a real PostgreSQL.

A healthy connection is passed without a query; one the server closed (terminated, as a
restart does to every backend) is refused, so the pool replaces it before a request uses it.
"""

import os
import subprocess
import sys
import time
from typing import Any

import psycopg
import pytest
from django.conf import settings
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool

from common.db import pool_check

pytestmark = [pytest.mark.usefixtures("postgres")]


def _dsn() -> str:
    """The tests' PostgreSQL server, its maintenance database (no table is needed)."""
    url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    return make_conninfo(url, dbname="postgres")


def test_a_healthy_connection_passes_without_a_round_trip(monkeypatch: Any) -> None:
    def no_query(conn: Any) -> None:
        raise AssertionError("a round trip")

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(no_query))
    with psycopg.connect(_dsn(), autocommit=True) as conn:
        conn.execute("SELECT 1")
        for _ in range(3):
            pool_check(conn)  # no exception: nothing was sent


def test_a_connection_the_server_terminated_is_refused() -> None:
    with (
        psycopg.connect(_dsn(), autocommit=True) as victim,
        psycopg.connect(_dsn(), autocommit=True) as admin,
    ):
        pid = victim.info.backend_pid
        row = admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()
        assert row == (True,)
        deadline = time.monotonic() + 5
        while admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]
        ).fetchone() != (0,):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(psycopg.OperationalError):
            pool_check(victim)


def test_a_closed_connection_is_refused() -> None:
    conn = psycopg.connect(_dsn(), autocommit=True)
    conn.close()
    with pytest.raises(psycopg.OperationalError):
        pool_check(conn)


def test_a_pool_with_the_check_replaces_a_terminated_connection() -> None:
    with ConnectionPool(
        _dsn(), min_size=1, max_size=1, check=pool_check, kwargs={"autocommit": True}
    ) as pool:
        with pool.connection() as conn:
            first = conn.info.backend_pid
        with psycopg.connect(_dsn(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [first])
            time.sleep(0.3)
        with pool.connection() as conn:  # the dead one is dropped, not handed out
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert conn.info.backend_pid != first


@pytest.mark.parametrize(
    ("env", "check", "django_checks"),
    [("", "common.db.pool_check", False), ("full", "None", True), ("0", "None", False)],
)
def test_the_settings_choose_the_check(env: str, check: str, django_checks: bool) -> None:
    code = (
        "import belief_web.settings as s; d = s.DATABASES['default']; "
        "c = d['OPTIONS']['pool'].get('check'); "
        "print(c.__module__ + '.' + c.__name__ if c else None, d['CONN_HEALTH_CHECKS'])"
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
    assert out == [check, str(django_checks)]
