"""Django's PostgreSQL backend whose pool checks a connection by asking its socket first.

With CONN_HEALTH_CHECKS, Django gives its psycopg pool `ConnectionPool.check_connection`,
which sends an empty query each time a request takes a connection: a round trip per request,
measured at 6 % of the answer endpoint's throughput (bench/README.md, issue 17). A connection the
server closed (a restart, a crash, an administrator's terminate) has something to read on its
socket: the server's FATAL notice, or the end of the stream. So `socket_first_check` asks the
kernel, without waiting, whether the socket is readable, and only then sends the empty query,
which raises on a dead connection, so that the pool opens a new one and no request sees the
dead one. A connection cut without a word (a network partition) is found by neither check
before its first query.

settings.DATABASES[...]["POOL_CHECK"]: "socket" (this check) or "full" (psycopg_pool's own);
Django builds the pool, so the check is swapped on the pool it built, once.
"""

import select
from typing import Any

import psycopg
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

_READABLE = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP


def socket_first_check(conn: Any) -> None:
    """psycopg_pool's checkout check, with a round trip only when the socket has news."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    poller = select.poll()
    poller.register(conn.fileno(), _READABLE)
    if poller.poll(0):
        ConnectionPool.check_connection(conn)  # raises if the server closed it


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self) -> Any:
        pool = super().pool  # type: ignore[misc]  # django-stubs lacks the pool (Django 5.1)
        if (
            pool is not None
            and self.settings_dict.get("POOL_CHECK") == "socket"
            # psycopg_pool keeps the check it was built with here; Django passes its own
            # only with CONN_HEALTH_CHECKS on.
            and pool._check is ConnectionPool.check_connection
        ):
            pool._check = socket_first_check
        return pool
