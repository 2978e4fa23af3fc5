"""Prepared statements for the hot statements written by hand, and the pool's checkout check.

Django's cursors bind parameters on the client, so PostgreSQL parses and plans every ORM query
each time; that is right for the ORM, whose SQL varies. The participant's answer runs the same
two statements thousands of times a minute, and planning them cost about as much server CPU
as running them. `prepared_cursor()` gives a cursor that binds on the server: psycopg then
prepares each statement once per pooled connection (settings: OPTIONS["prepare_threshold"],
environment DB_PREPARE_THRESHOLD; "off" turns preparing off, e.g. behind a PgBouncer in
transaction mode). Queries still go through Django's cursor wrapper: error translation, the
debug query log and `CaptureQueriesContext` see them like any other.

`pool_check` is the psycopg pool's check of a connection as a request takes it
(settings.DATABASES OPTIONS["pool"]["check"]). psycopg_pool's own check sends an empty
query: a round trip per request, about a twentieth of an answer's CPU with PostgreSQL's
share. A connection the server closed (a restart, a crash, an administrator's terminate)
has something to read on its socket: the server's FATAL notice, or the end of the stream.
So the check asks the kernel, without waiting, whether the socket is readable; only then
does it send the empty query, which raises on a dead connection, so that the pool opens a
new one and the request never sees the dead one. A connection cut without a word (a network
partition) is not detected by either check before its first query.
"""

import select
from typing import Any

from django.db import connection
from django.db.backends.utils import CursorDebugWrapper


class _DebugWrapper(CursorDebugWrapper):
    """Logs the statement with its parameters quoted in (a server-bound cursor keeps no text)."""

    def execute(self, sql: Any, params: Any = None) -> Any:
        with self.debug_sql(self.db.ops.compose_sql(sql, params), params):
            return self._execute_with_wrappers(sql, params, many=False, executor=self._execute)


def prepared_cursor() -> Any:
    """A Django cursor on the default connection whose statements PostgreSQL plans once."""
    from django.db.backends.postgresql.base import (  # type: ignore[attr-defined]
        ServerBindingCursor,
    )

    connection.ensure_connection()
    with connection.wrap_database_errors:
        raw = ServerBindingCursor(connection.connection)
    if connection.queries_logged:
        return _DebugWrapper(raw, connection)
    return connection.make_cursor(raw)


_READABLE = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP


def pool_check(conn: Any) -> None:
    """psycopg_pool's checkout check, with a round trip only when the socket has news."""
    if conn.closed or conn.broken:
        raise _dead()
    poller = select.poll()
    poller.register(conn.fileno(), _READABLE)
    if poller.poll(0):
        from psycopg_pool import ConnectionPool

        ConnectionPool.check_connection(conn)  # raises if the server closed it


def _dead() -> Exception:
    import psycopg

    return psycopg.OperationalError("the connection is closed")
