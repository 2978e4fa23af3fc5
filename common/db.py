"""Prepared statements for the few hot statements written by hand (PostgreSQL only).

Django's cursors bind parameters on the client, so PostgreSQL parses and plans every ORM query
each time; that is right for the ORM, whose SQL varies. The participant's answer runs the same
two statements thousands of times a minute, and planning them cost about as much server CPU
as running them. `prepared_cursor()` gives a cursor that binds on the server: psycopg then
prepares each statement once per pooled connection (settings: OPTIONS["prepare_threshold"],
environment DB_PREPARE_THRESHOLD; "off" turns preparing off, e.g. behind a PgBouncer in
transaction mode). Queries still go through Django's cursor wrapper: error translation, the
debug query log and `CaptureQueriesContext` see them like any other.
"""

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
