# ruff: noqa: S608 - every interpolated piece is a table name or a constant of this module; values are bound as parameters.
"""Exports at any size: trials, responses and scores as CSV, JSON pages or Parquet.

The machinery, and the trials, responses and visits tables (the scores' columns and SELECT
are scoring.exports', the questionnaires' instruments.exports'; the codebook of them all
is trials.codebook).

One SELECT per table, written in SQL that PostgreSQL and SQLite both run, produces the
export's columns with their natural types (the trial-level derived columns are computed
in that SQL exactly as scoring.metrics.derive_trials computes them). Then:

- CSV on PostgreSQL: `COPY (SELECT ...) TO STDOUT WITH (FORMAT csv, HEADER)` through
  psycopg's cursor.copy(), text cells neutralised against spreadsheet formulas in SQL;
  the chunks are passed on as they come (re-packed to 64 KiB), never held whole;
- CSV elsewhere (SQLite, `make run`): the same SELECT through a cursor, fetched in
  batches and formatted in Python to the very bytes COPY writes;
- Parquet: batches of at most PARQUET_ROW_GROUP rows (on PostgreSQL parsed from the
  COPY stream by pyarrow's streaming CSV reader, elsewhere built from cursor batches),
  one row group each, each written out as soon as it is complete;
- JSON: keyset pages (`id > last`) of the same SELECT.

Scores keep their figures in a JSON column, so their export always goes through Python
(one row per session: a few thousand rows, not millions).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from django.db import connection
from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime

from common.scalars import json_scalar
from protocol import phases
from trials.models import (
    Arm,
    Event,
    EventList,
    Participant,
    ParticipantIdentity,
    Response,
    Session,
    Study,
    Timepoint,
    Trial,
)

if TYPE_CHECKING:
    import pyarrow as pa

ColumnType = Literal["text", "integer", "number", "boolean", "datetime"]

CSV_CHUNK: Final = 64 * 1024
FETCH_ROWS: Final = 5_000
PARQUET_ROW_GROUP: Final = 10_000
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV
# injection"); tab and carriage return are in the list because some spreadsheets strip
# them before looking.
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    unit: str
    meaning: str


def _c(name: str, type_: ColumnType, unit: str, meaning: str) -> Column:
    return Column(name, type_, unit, meaning)


PCT: Final = "percent"
_NUM: Final = "number"
RATING: Final = "rating 1-6"


def _unit(phase: phases.Phase) -> str:
    if phase.range.source is phases.RangeSource.STUDY_SCALE or phase.range == phases.PERCENT:
        return PCT
    return f"rating {phase.range.low}-{phase.range.high}"


def _phase_names() -> str:
    """The phases in words, for the codebook: "e1, ebr1, br (the base-rate screen; ...)"."""
    names = [
        f"{p.name} (the base-rate screen; value = the base rate shown)"
        if p.kind is phases.Kind.BASE_RATE
        else p.name
        for p in phases.PHASES
    ]
    return f"{', '.join(names[:-1])} or {names[-1]}."


# br_mode follows the base rate's column.
_BR_MODE: Final = _c(
    "br_mode", "text", "", "fixed: the list's base rate; adaptive: drawn per trial."
)


def _phase_columns() -> tuple[Column, ...]:
    """One column per phase, in the trials export's order (protocol.phases.TRIAL_COLUMNS)."""
    columns: list[Column] = []
    for phase in phases.TRIAL_COLUMNS:
        columns.append(_c(phase.name, "integer", _unit(phase), phase.meaning))
        if phase.kind is phases.Kind.BASE_RATE:
            columns.append(_BR_MODE)
    return tuple(columns)


_KEYS: Final = (
    _c("study", "text", "", "Study slug."),
    _c(
        "participant",
        "integer",
        "",
        "Participant's pseudonymous id in this platform (stable; never the recruiter's id, "
        "never the participant's link token).",
    ),
    _c("arm", "text", "", "Arm (group) code."),
    _c("timepoint", "text", "", "Timepoint (visit) label."),
    _c("session", "integer", "", "Session id (one per participant and timepoint)."),
)
EXTERNAL_ID: Final = _c(
    "external_id",
    "text",
    "",
    "The recruiter's or clinic's id of the participant. Only with ?include=external_id, "
    "for owners and analysts.",
)

TRIAL_COLUMNS: Final = (
    *_KEYS,
    _c("list", "text", "", "Name of the event list the session used."),
    _c("event", "text", "", "The event's text in the study's first language."),
    _c("event_code", "text", "", "The event's code in its list."),
    _c("block1_position", "integer", "", "Position of the trial in block 1 (1 = first)."),
    _c("block2_position", "integer", "", "Position in block 2; empty for practice trials."),
    *_phase_columns(),
    _c(
        "valence",
        "text",
        "",
        "good (BR < E1 for a negative event, BR > E1 for a positive one), bad (the "
        "opposite) or neutral (BR = E1); empty when E1 or BR is missing.",
    ),
    _c("ee", "integer", PCT, "Estimation error |E1 - BR|."),
    _c(
        "update",
        "integer",
        "percentage points",
        "sign(BR - E1) * (E2 - E1) (for a negative event: E1 - E2 after good news, E2 - E1 "
        "after bad news): a move toward the base rate is positive, a move away negative; "
        "empty for neutral or incomplete trials.",
    ),
    _c("excluded", "boolean", "", "true when the trial does not enter the scores."),
    _c(
        "exclusion_reason",
        "text",
        "",
        "practice, missing_e1, missing_br, missing_e2 or neutral (the first that applies); "
        "empty when not excluded.",
    ),
    _c("rt_e1_ms", "integer", "ms", "Reaction time of E1 (screen onset to submit)."),
    _c("rt_e2_ms", "integer", "ms", "Reaction time of E2."),
    _c("practice", "boolean", "", "true for a practice trial (never scored)."),
    LANGUAGE := _c(
        "language",
        "text",
        "",
        "The language the participant took the task in (en, fr, ...): the session's language.",
    ),
    _c(
        "polarity",
        "text",
        "",
        "negative (an adverse event, the default) or positive (a desirable one): sets "
        "which side of E1 the good news is.",
    ),
)

RESPONSE_COLUMNS: Final = (
    *_KEYS,
    _c("event", "text", "", "The event's text in the study's first language."),
    _c("event_code", "text", "", "The event's code in its list."),
    _c(
        "phase",
        "text",
        "",
        _phase_names(),
    ),
    _c("value", "integer", "percent or rating 1-6", "The answer (percent; ratings 1-6)."),
    _c("rt_ms", "integer", "ms", "Screen onset to submit (for br: the viewing time)."),
    _c("onset_at", "datetime", "UTC", "Screen onset on the participant's device (ISO 8601)."),
    _c("received_at", "datetime", "UTC", "When the server stored the answer (ISO 8601)."),
    _c("client_id", "text", "", "The answer's idempotency key (UUID) sent by the client."),
)

QUESTIONNAIRE_COLUMNS: Final = (
    *_KEYS,
    _c("instrument", "text", "", "Instrument code (GET .../instruments/ lists the study's)."),
    _c("item", "text", "", "Item code: <instrument>_<n>, or age, sex, education_years."),
    _c(
        "value",
        "integer",
        "",
        "The answer: the chosen option's value, or the number typed (age in years); empty "
        "for an optional item skipped.",
    ),
    _c("source", "text", "", "participant (answered in the session) or clinician (entered)."),
    _c("rt_ms", "integer", "ms", "Screen onset to answer; empty for clinician ratings."),
    _c("answered_at", "datetime", "UTC", "When the server stored the answer (ISO 8601)."),
)
_INSTRUMENT_KEYS: Final = tuple(c for c in _KEYS if c.name != "session")
INSTRUMENT_SCORE_COLUMNS: Final = (
    *_INSTRUMENT_KEYS,
    _c("instrument", "text", "", "Instrument code."),
    _c(
        "total",
        _NUM,
        "points",
        "Sum of the scored items (reverse-keyed items mirrored; prorated when the "
        "instrument allows missing items); empty when incomplete.",
    ),
    _c("n_answered", "integer", "items", "Scored items (or max-of groups) answered."),
    _c("n_missing", "integer", "items", "Scored items (or max-of groups) missing."),
    _c("status", "text", "", "complete, prorated or incomplete."),
)
SUBSCALE_COLUMN: Final = _c(
    "subscale_<code>", _NUM, "points", "One column per subscale of the study's instruments."
)

_VISIT_KEYS: Final = tuple(c for c in _KEYS if c.name != "session")
VISIT_COLUMNS: Final = (
    *_VISIT_KEYS,
    _c(
        "status",
        "text",
        "",
        "done, open, upcoming, waiting_anchor (a staff time not yet set) or missed (the "
        "window closed unanswered, or the session was abandoned).",
    ),
    _c(
        "anchor",
        "datetime",
        "UTC",
        "The moment the window counts from (see anchor_type); empty while unknown.",
    ),
    _c("opens_at", "datetime", "UTC", "When the window opens; empty while unknown."),
    _c("closes_at", "datetime", "UTC", "When the window closes; empty: never, or unknown."),
    _c("completed_at", "datetime", "UTC", "When the visit's session was completed."),
    _c("reminders_sent", "integer", "messages", "Reminder e-mails sent for this visit."),
    _c(
        "anchor_type",
        "text",
        "",
        "enrolment (the first visit), previous, first (that visit's completion) or staff "
        "(the participant's staff time, e.g. the infusion).",
    ),
)


def with_external_id(columns: tuple[Column, ...], *, external_id: bool) -> tuple[Column, ...]:
    """The export's columns, with the participant's external id last when asked for."""
    return (*columns, EXTERNAL_ID) if external_id else columns


# --------------------------------------------------------------------------- SQL


def _t(model: Any) -> str:
    return str(model._meta.db_table)


# The phases whose values the trials export pivots from the responses (the base rate's
# value is the trial's own), and those with a reaction-time column.
RESPONSE_PIVOT: Final = tuple(
    p.name for p in phases.TRIAL_COLUMNS if p.kind is not phases.Kind.BASE_RATE
)
RT_PIVOT: Final = tuple(p.name for p in phases.TRIAL_COLUMNS if p.rt_column)


def _phase_select() -> str:
    """The phase columns of the trials SELECT, in TRIAL_COLUMNS order."""
    parts = []
    for phase in phases.TRIAL_COLUMNS:
        if phase.kind is phases.Kind.BASE_RATE:
            parts.append(f't.br AS "{phase.name}", t.br_mode AS "br_mode"')
        else:
            parts.append(f'r.{phase.name} AS "{phase.name}"')
    return ", ".join(parts)


_PHASE_SELECT: Final = _phase_select()


@dataclass(frozen=True)
class Query:
    """A SELECT with %s parameters, its columns, and its keyset column (for JSON pages)."""

    sql: str
    params: list[Any]
    columns: tuple[Column, ...]
    kind: str
    # Builds the export's row from the SELECT's (the scores' JSON figures become columns);
    # None: the SELECT's row is the export's.
    expand: Callable[[Sequence[Any], tuple[Column, ...]], list[Any]] | None = None


def _sessions_subquery(sessions: QuerySet[Session]) -> tuple[str, list[Any]]:
    sql, params = sessions.order_by().values("pk").query.sql_with_params()
    return sql, list(params)


def _event_text(language: str) -> tuple[str, list[Any]]:
    if connection.vendor == "postgresql":
        return "COALESCE(e.texts ->> %s, e.code)", [language]
    return """COALESCE(json_extract(e.texts, '$."' || %s || '"'), e.code)""", [language]


def _keys_from() -> str:
    return (
        f"JOIN {_t(Session)} se ON se.id = {{session_col}} "
        f"JOIN {_t(Participant)} p ON p.id = se.participant_id "
        f"JOIN {_t(Study)} st ON st.id = p.study_id "
        f"JOIN {_t(Arm)} a ON a.id = p.arm_id "
        f"JOIN {_t(Timepoint)} tp ON tp.id = se.timepoint_id "
    )


_KEYS_SELECT: Final = (
    'st.slug AS "study", p.id AS "participant", a.code AS "arm", tp.label AS "timepoint", '
    'se.id AS "session"'
)


def _identity(external_id: bool) -> tuple[str, str]:
    if not external_id:
        return "", ""
    return (
        ', pi.external_id AS "external_id"',
        f" LEFT JOIN {_t(ParticipantIdentity)} pi ON pi.participant_id = p.id",
    )


def trials_query(
    *,
    study: Study,
    sessions: QuerySet[Session],
    external_id: bool = False,
    after: int | None = None,
    limit: int | None = None,
) -> Query:
    """One row per (session, event) in TRIAL_COLUMNS order, ordered by trial id."""
    sessions_sql, sessions_params = _sessions_subquery(sessions)
    language = (study.languages or ["en"])[0]
    event_sql, event_params = _event_text(language)
    ident_select, ident_join = _identity(external_id)
    pivot = ", ".join(
        f"MAX(CASE WHEN r.phase = '{phase}' THEN r.value END) AS {phase}"
        for phase in RESPONSE_PIVOT
    )
    rts = ", ".join(
        f"MAX(CASE WHEN r.phase = '{phase}' THEN r.rt_ms END) AS rt_{phase}_ms"
        for phase in RT_PIVOT
    )
    # The responses of the trials wanted: all the filtered sessions' for a whole export, only
    # those of the page's sessions for a JSON page.
    if limit is not None:
        after_sql = " AND t2.id > %s" if after is not None else ""
        response_sessions = (
            f"SELECT t2.session_id FROM {_t(Trial)} t2 WHERE t2.session_id IN ({sessions_sql})"
            f"{after_sql} ORDER BY t2.id LIMIT %s"
        )
        response_params = [*sessions_params, *([after] if after is not None else []), limit]
        # SQLite and PostgreSQL both refuse LIMIT directly inside IN: wrap it once more.
        response_sessions = f"SELECT session_id FROM ({response_sessions}) page"
    else:
        response_sessions, response_params = sessions_sql, sessions_params
    # derive_trials' order of exclusion reasons: practice, missing_e1, missing_br,
    # missing_e2, neutral.
    reason = (
        "CASE WHEN t.practice THEN 'practice' WHEN r.e1 IS NULL THEN 'missing_e1' "
        "WHEN t.br IS NULL THEN 'missing_br' WHEN r.e2 IS NULL THEN 'missing_e2' "
        "WHEN t.br = r.e1 THEN 'neutral' END"
    )
    sql = (
        f'SELECT t.id AS "_key", {_KEYS_SELECT}, el.name AS "list", {event_sql} AS "event", '
        'e.code AS "event_code", t.block1_position AS "block1_position", '
        f't.block2_position AS "block2_position", {_PHASE_SELECT}, '
        "CASE WHEN r.e1 IS NULL OR t.br IS NULL THEN NULL WHEN t.br = r.e1 THEN 'neutral' "
        "WHEN (t.br < r.e1) = (e.polarity = 'negative') THEN 'good' ELSE 'bad' END "
        'AS "valence", '
        'ABS(r.e1 - t.br) AS "ee", '
        "CASE WHEN t.br < r.e1 THEN r.e1 - r.e2 WHEN t.br > r.e1 THEN r.e2 - r.e1 END "
        'AS "update", '
        f'({reason}) IS NOT NULL AS "excluded", {reason} AS "exclusion_reason", '
        'r.rt_e1_ms AS "rt_e1_ms", r.rt_e2_ms AS "rt_e2_ms", t.practice AS "practice", '
        'se.language AS "language", e.polarity AS "polarity"'
        f"{ident_select} "
        f"FROM {_t(Trial)} t "
        + _keys_from().format(session_col="t.session_id")
        + f"JOIN {_t(EventList)} el ON el.id = se.event_list_id "
        f"JOIN {_t(Event)} e ON e.id = t.event_id"
        f"{ident_join} "
        f"LEFT JOIN (SELECT r.session_id, r.event_id, {pivot}, {rts} "
        f"FROM {_t(Response)} r WHERE r.session_id IN ({response_sessions}) "
        "GROUP BY r.session_id, r.event_id) r "
        "ON r.session_id = t.session_id AND r.event_id = t.event_id "
        f"WHERE t.session_id IN ({sessions_sql})"
    )
    params = [*event_params, *response_params, *sessions_params]
    sql, params = _with_page(sql, params, "t.id", after, limit)
    return Query(sql, params, with_external_id(TRIAL_COLUMNS, external_id=external_id), "trials")


def responses_query(
    *,
    study: Study,
    sessions: QuerySet[Session],
    external_id: bool = False,
    after: int | None = None,
    limit: int | None = None,
) -> Query:
    """One row per stored response in RESPONSE_COLUMNS order, ordered by response id."""
    sessions_sql, sessions_params = _sessions_subquery(sessions)
    event_sql, event_params = _event_text((study.languages or ["en"])[0])
    ident_select, ident_join = _identity(external_id)
    sql = (
        f'SELECT r.id AS "_key", {_KEYS_SELECT}, {event_sql} AS "event", e.code AS "event_code", '
        'r.phase AS "phase", r.value AS "value", r.rt_ms AS "rt_ms", '
        'r.onset_at AS "onset_at", r.received_at AS "received_at", '
        f'r.client_id AS "client_id"{ident_select} '
        f"FROM {_t(Response)} r "
        + _keys_from().format(session_col="r.session_id")
        + f"JOIN {_t(Event)} e ON e.id = r.event_id{ident_join} "
        f"WHERE r.session_id IN ({sessions_sql})"
    )
    sql, params = _with_page(sql, [*event_params, *sessions_params], "r.id", after, limit)
    return Query(
        sql, params, with_external_id(RESPONSE_COLUMNS, external_id=external_id), "responses"
    )


def _with_page(
    sql: str, params: list[Any], key: str, after: int | None, limit: int | None
) -> tuple[str, list[Any]]:
    if after is not None:
        sql += f" AND {key} > %s"
        params = [*params, after]
    sql += f" ORDER BY {key}"
    if limit is not None:
        sql += " LIMIT %s"
        params = [*params, limit]
    return sql, params


# ------------------------------------------------------------------------ values


def _datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            return None
        value = parsed
    moment: datetime = value
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _normalise(value: Any, type_: ColumnType) -> Any:
    """A database value as the export's Python value (SQLite gives 0/1, text dates...)."""
    if value is None:
        return None
    if type_ == "boolean":
        return bool(value)
    if type_ == "datetime":
        return _datetime(value)
    if type_ == "integer":
        return int(value)
    if type_ == "number":
        return json_scalar(float(value))
    return str(value)


def keyed_rows(query: Query, *, batch: int = FETCH_ROWS) -> Iterator[tuple[int, list[Any]]]:
    """(keyset key, normalised row) per row, fetched in batches (server-side on PostgreSQL)."""
    expand = query.expand
    types = [c.type for c in query.columns]
    uuid_at = [i for i, c in enumerate(query.columns) if c.name == "client_id"]
    with connection.chunked_cursor() as cursor:
        cursor.execute(query.sql, query.params)
        while True:
            fetched = cursor.fetchmany(batch)
            if not fetched:
                return
            for raw in fetched:
                values = expand(raw[1:], query.columns) if expand else raw[1:]
                row = [_normalise(v, t) for v, t in zip(values, types, strict=True)]
                for i in uuid_at:  # SQLite keeps UUIDs as 32 hex digits
                    if row[i] is not None:
                        row[i] = str(uuid.UUID(row[i]))
                yield int(raw[0]), row


def rows(query: Query) -> Iterator[list[Any]]:
    """The query's rows, normalised, in the export's column order."""
    for _, row in keyed_rows(query):
        yield row


def json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    return value


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --------------------------------------------------------------------------- CSV


def neutralise(text: str) -> str:
    """Prefix a text cell a spreadsheet would run as a formula with a single quote."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _quote(text: str) -> str:
    # PostgreSQL's COPY CSV rules, so both paths give the same bytes: quote an empty string
    # (an unquoted empty cell is NULL) and anything holding a comma, a quote or a newline.
    if text == "" or any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_cell(value: Any, type_: ColumnType) -> str:
    if value is None:
        return ""
    if type_ == "text":
        return _quote(neutralise(value))
    if type_ == "boolean":
        return "true" if value else "false"
    if type_ == "datetime":
        return _iso(value)
    if type_ == "number":
        return repr(float(value))
    return str(value)


def _rechunk(pieces: Iterable[bytes | memoryview | str]) -> Iterator[bytes]:
    """Re-pack many small pieces into CSV_CHUNK-sized ones (one write per chunk downstream)."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece.encode() if isinstance(piece, str) else piece
        if len(buffer) >= CSV_CHUNK:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def csv_python(query: Query) -> Iterator[bytes]:
    """CSV bytes formatted in Python from cursor batches (any database)."""
    types = [c.type for c in query.columns]

    def lines() -> Iterator[str]:
        yield ",".join(_quote(c.name) for c in query.columns) + "\n"
        for row in rows(query):
            yield ",".join(csv_cell(v, t) for v, t in zip(row, types, strict=True)) + "\n"

    return _rechunk(lines())


def _copy_select(query: Query, *, for_csv: bool) -> str:
    """The query wrapped so that COPY writes each column as the Python path does."""
    exprs = []
    for column in query.columns:
        ref = f'x."{column.name}"'
        if column.type == "text":
            ref = f"CAST({ref} AS text)"  # client_id is a uuid
        if column.type == "text" and for_csv:
            expr = (
                f"CASE WHEN substr({ref}, 1, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) "
                f"THEN '''' || {ref} ELSE {ref} END"
            )
        elif column.type == "boolean":
            expr = f"CASE WHEN {ref} THEN 'true' WHEN NOT {ref} THEN 'false' END"
        elif column.type == "datetime":
            expr = f"""to_char({ref} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
        else:
            expr = ref
        exprs.append(f'{expr} AS "{column.name}"')
    return f"SELECT {', '.join(exprs)} FROM ({query.sql}) x"


def _copy_sql(query: Query, *, for_csv: bool) -> str:
    import psycopg

    connection.ensure_connection()
    select = _copy_select(query, for_csv=for_csv)
    # COPY takes no bind parameters: bind them client-side, with psycopg's own quoting.
    literal = psycopg.ClientCursor(connection.connection).mogrify(select, query.params)
    return f"COPY ({literal}) TO STDOUT WITH (FORMAT csv, HEADER)"


def _copy_chunks(query: Query, *, for_csv: bool) -> Iterator[memoryview]:
    sql = _copy_sql(query, for_csv=for_csv)
    with connection.cursor() as cursor, cursor.copy(sql) as copy:
        yield from copy


def csv_copy(query: Query) -> Iterator[bytes]:
    """CSV bytes from PostgreSQL's COPY, passed on as they come."""
    return _rechunk(_copy_chunks(query, for_csv=True))


# Tables with figures (floats) are written by Python: COPY prints 12 where Python prints
# 12.0, and they are small (one row per session or per session x instrument).
PYTHON_ONLY: Final = frozenset({"scores", "instrument-scores"})


def can_copy(query: Query) -> bool:
    return connection.vendor == "postgresql" and query.kind not in PYTHON_ONLY


def csv_stream(query: Query) -> Iterator[bytes]:
    return csv_copy(query) if can_copy(query) else csv_python(query)


# ------------------------------------------------------------------------ Parquet

# pyarrow is imported when a Parquet file is asked for, not with the URL configuration:
# it weighs some 80 MB in every web worker that never writes one.


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    import pyarrow as pa

    types = {
        "text": pa.string(),
        "integer": pa.int64(),
        "number": pa.float64(),
        "boolean": pa.bool_(),
        "datetime": pa.timestamp("us", tz="UTC"),
    }
    return pa.schema([pa.field(c.name, types[c.type]) for c in columns])


class _Drain:
    """A write-only file for ParquetWriter whose bytes are taken away after each row group."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.pieces.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        out = b"".join(self.pieces)
        self.pieces.clear()
        return out


def _parquet(schema: pa.Schema, tables: Iterable[pa.Table]) -> Iterator[bytes]:
    import pyarrow.parquet as pq

    sink = _Drain()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    try:
        for table in tables:
            writer.write_table(table, row_group_size=PARQUET_ROW_GROUP)
            chunk = sink.take()
            if chunk:
                yield chunk
    finally:
        writer.close()
    yield sink.take()


def _python_tables(query: Query, schema: pa.Schema) -> Iterator[pa.Table]:
    batch: list[list[Any]] = []
    for row in rows(query):
        batch.append(row)
        if len(batch) >= PARQUET_ROW_GROUP:
            yield _table(batch, schema)
            batch = []
    if batch:
        yield _table(batch, schema)


def _table(batch: list[list[Any]], schema: pa.Schema) -> pa.Table:
    import pyarrow as pa

    columns: list[Sequence[Any]] = list(zip(*batch, strict=True)) if batch else [[] for _ in schema]
    return pa.table(
        [
            pa.array(list(values), type=field.type)
            for values, field in zip(columns, schema, strict=True)
        ],
        schema=schema,
    )


def _copy_tables(query: Query, schema: pa.Schema) -> Iterator[pa.Table]:
    import pyarrow.csv as pa_csv

    # COPY hands over one row per chunk. Blocks of PARQUET_ROW_GROUP rows are gathered here,
    # in the request's thread (Django's connection is per thread, so the COPY is never read
    # from pyarrow's I/O threads), and each block is parsed by pyarrow's CSV reader.
    options = {
        "read_options": pa_csv.ReadOptions(column_names=schema.names),
        "parse_options": pa_csv.ParseOptions(newlines_in_values=True),
        "convert_options": pa_csv.ConvertOptions(
            column_types=schema,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["true"],
            false_values=["false"],
            timestamp_parsers=[pa_csv.ISO8601],
        ),
    }
    chunks = _copy_chunks(query, for_csv=False)
    next(chunks, None)  # the header
    block = bytearray()
    n_rows = 0
    for chunk in chunks:
        block += chunk
        n_rows += 1
        if n_rows >= PARQUET_ROW_GROUP:
            yield pa_csv.read_csv(io.BytesIO(block), **options)
            block.clear()
            n_rows = 0
    if n_rows:
        yield pa_csv.read_csv(io.BytesIO(block), **options)


def parquet_stream(query: Query) -> Iterator[bytes]:
    """Parquet bytes, one row group per PARQUET_ROW_GROUP rows, streamed as written."""
    schema = arrow_schema(query.columns)
    tables = _copy_tables(query, schema) if can_copy(query) else _python_tables(query, schema)
    return _parquet(schema, tables)


# ------------------------------------------------------------------------- pages


def page(query: Query) -> tuple[list[dict[str, Any]], list[int]]:
    """A JSON page (the query carries its LIMIT) and the keyset key of each row."""
    names = [c.name for c in query.columns]
    out, keys = [], []
    for key, row in keyed_rows(query):
        out.append({n: json_value(v) for n, v in zip(names, row, strict=True)})
        keys.append(key)
    return out, keys
