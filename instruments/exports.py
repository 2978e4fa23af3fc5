# ruff: noqa: S608 - every interpolated piece is a table name or a constant of this module; values are bound as parameters.
"""The questionnaires and instrument-scores exports: SELECTs in the shape of trials.exports
(its Query runs through the same CSV / COPY / Parquet / JSON-page machinery, streamed)."""

from __future__ import annotations

from django.db import connection
from django.db.models import QuerySet

from instruments.definition import INSTRUMENT_SCORE_VERSION
from instruments.models import Instrument, InstrumentScore, ItemAnswer, StudyInstrument
from trials.exports import (
    _KEYS_SELECT,
    EXTERNAL_ID,
    INSTRUMENT_SCORE_COLUMNS,
    QUESTIONNAIRE_COLUMNS,
    Column,
    Query,
    _c,
    _identity,
    _keys_from,
    _sessions_subquery,
    _t,
    _with_page,
)
from trials.models import Session, Study


def questionnaires_query(
    *,
    study: Study,
    sessions: QuerySet[Session],
    external_id: bool = False,
    after: int | None = None,
    limit: int | None = None,
) -> Query:
    """One row per answered item (participant's or clinician's), ordered by answer id."""
    sessions_sql, sessions_params = _sessions_subquery(sessions)
    ident_select, ident_join = _identity(external_id)
    sql = (
        f'SELECT ia.id AS "_key", {_KEYS_SELECT}, ins.code AS "instrument", '
        'ia.item AS "item", ia.value AS "value", ia.source AS "source", '
        f'ia.rt_ms AS "rt_ms", ia.answered_at AS "answered_at"{ident_select} '
        f"FROM {_t(ItemAnswer)} ia "
        + _keys_from().format(session_col="ia.session_id")
        + f"JOIN {_t(Instrument)} ins ON ins.id = ia.instrument_id{ident_join} "
        f"WHERE ia.session_id IN ({sessions_sql})"
    )
    sql, params = _with_page(sql, sessions_params, "ia.id", after, limit)
    columns = (*QUESTIONNAIRE_COLUMNS, EXTERNAL_ID) if external_id else QUESTIONNAIRE_COLUMNS
    return Query(sql, params, columns, "questionnaires")


def study_subscales(*, study: Study) -> list[str]:
    """The subscale codes of the study's instruments, in instrument then file order."""
    seen: list[str] = []
    links = (
        StudyInstrument.objects.filter(study=study)
        .select_related("instrument")
        .order_by("instrument__code")
    )
    for link in links:
        for subscale in link.instrument.definition.get("subscales", []) or []:
            code = subscale.get("code")
            if isinstance(code, str) and code not in seen:
                seen.append(code)
    return seen


def _subscale_expr(code: str) -> str:
    # Codes are checked against CODE_PATTERN on import ([a-z][a-z0-9_]*): safe in a path.
    if connection.vendor == "postgresql":
        return f"CAST(isc.subscales ->> '{code}' AS double precision)"
    return f"json_extract(isc.subscales, '$.{code}')"


def instrument_scores_query(
    *,
    study: Study,
    sessions: QuerySet[Session],
    external_id: bool = False,
    after: int | None = None,
    limit: int | None = None,
) -> Query:
    """One row per (participant, timepoint, instrument) scored, then subscale_<code>."""
    sessions_sql, sessions_params = _sessions_subquery(sessions)
    ident_select, ident_join = _identity(external_id)
    subscales = study_subscales(study=study)
    sub_select = "".join(f', {_subscale_expr(c)} AS "subscale_{c}"' for c in subscales)
    keys = 'st.slug AS "study", p.id AS "participant", a.code AS "arm", tp.label AS "timepoint"'
    sql = (
        f'SELECT isc.id AS "_key", {keys}, ins.code AS "instrument", isc.total AS "total", '
        'isc.n_answered AS "n_answered", isc.n_missing AS "n_missing", '
        f'isc.status AS "status"{sub_select}{ident_select} '
        f"FROM {_t(InstrumentScore)} isc "
        + _keys_from().format(session_col="isc.session_id")
        + f"JOIN {_t(Instrument)} ins ON ins.id = isc.instrument_id{ident_join} "
        f"WHERE isc.score_version = %s AND isc.session_id IN ({sessions_sql})"
    )
    sql, params = _with_page(
        sql, [INSTRUMENT_SCORE_VERSION, *sessions_params], "isc.id", after, limit
    )
    columns: tuple[Column, ...] = (
        *INSTRUMENT_SCORE_COLUMNS,
        *(_c(f"subscale_{c}", "number", "points", f"Subscale {c}.") for c in subscales),
    )
    if external_id:
        columns = (*columns, EXTERNAL_ID)
    return Query(sql, params, columns, "instrument-scores")
