"""Recording answers: one row per (session, event, phase), in order, idempotent by client_id."""

import json
import re
import secrets
import threading
import uuid
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn
from urllib.parse import quote

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from common.db import prepared_cursor
from common.env import env_int
from protocol import phases
from protocol.answers import answer_refusal
from protocol.phases import STEP_FLAGS
from trials.models import (
    Participant,
    Response,
    Session,
    Study,
    Trial,
    study_config,
)
from trials.services.errors import Conflict, InvalidInput, NotFound
from trials.steps import Step, session_steps
from trials.tokens import new_completion_code

_rng = secrets.SystemRandom()
# trials.tokens.new_token: URL-safe base64. Anything else (a NUL, a 1 kB string) is not a
# token and must not reach a query: PostgreSQL refuses NUL in text (a 500 otherwise).
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def token_wellformed(token: str) -> bool:
    """Whether a string could be one of our tokens (checked before any query)."""
    return bool(token) and _TOKEN_SHAPE.fullmatch(token) is not None


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The columns of a row the fast path just inserted that its answer repeats (building a
    Response model instance for them cost more CPU than the rest of the answer's Python)."""

    pk: int
    client_id: uuid.UUID
    phase: str
    value: int
    rt_ms: int
    onset_at: datetime | None
    received_at: datetime


@dataclass(frozen=True)
class Recorded:
    response: Response | StoredAnswer
    event_code: str
    created: bool
    br: int | None
    done: int
    total: int


def session_for_token(token: str) -> Session:
    """The session of a token, with its participant and study (one query)."""
    session = (
        Session.objects.select_related("participant", "participant__study")
        .filter(token=token)
        .first()
        if token_wellformed(token)
        else None
    )
    if session is None:
        raise NotFound("Unknown session.")
    return session


def steps_of(session: Session) -> list[Step]:
    return session_steps(session.plan, study_config(session.participant.study))


def step_ref(step: Step) -> dict[str, Any]:
    """A step as a refusal or the missing list names it: its event and phase, or for a
    questionnaire item (event null) its instrument and item."""
    if step.is_item:
        return {
            "event": None,
            "phase": step.phase,
            "instrument": step.instrument,
            "item": step.item,
        }
    return {"event": step.code, "phase": step.phase}


def response_record(
    *,
    token: str,
    client_id: uuid.UUID,
    event: str,
    phase: str,
    value: int,
    rt_ms: int,
    onset_at: datetime | None,
) -> Recorded:
    """Store one answer if it is the session's next step; a repeated client_id writes nothing."""
    answer = Answer(client_id, event, phase, value, rt_ms, onset_at)
    if connection.vendor == "postgresql":
        fast = record_fast(token=token, answer=answer)
        if fast is not None:
            return fast
    return _record(token=token, answer=answer)


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer to a task step as the participant API received it."""

    client_id: uuid.UUID
    event: str
    phase: str
    value: int
    rt_ms: int
    onset_at: datetime | None


def _record(*, token: str, answer: Answer) -> Recorded:
    """The general path: every case, every refusal explained, through the ORM."""
    client_id, event, phase, value = answer.client_id, answer.event, answer.phase, answer.value
    rt_ms, onset_at = answer.rt_ms, answer.onset_at
    session = session_for_token(token)
    study = session.participant.study
    steps = steps_of(session)
    total = len(steps)
    index = session.step_index
    expected = steps[index] if index < total else None

    closed = session.status in (Session.Status.COMPLETED, Session.Status.ABANDONED)
    if closed or expected is None or (expected.code, expected.phase) != (event, phase):
        replay = _replay(session=session, answer=answer, steps=steps)
        if replay is not None:
            return replay
        _refuse_out_of_order(session=session, steps=steps, event=event, phase=phase)

    assert expected is not None
    if session.participant.withdrawn_at is not None:
        raise Conflict("This participant has withdrawn.", code="withdrawn")
    declared = phases.BY_NAME[phase]
    # A base-rate screen's trial has its base rate already (drawn at its E1).
    shown = _shown_base_rate(session, expected) if declared.kind is phases.Kind.BASE_RATE else None
    _refuse_if_unacceptable(
        declared,
        answer,
        scale_min=study.scale_min,
        scale_max=study.scale_max,
        min_br_view_ms=study.min_br_view_ms,
        base_rate=shown,
    )

    now = timezone.now()
    br: int | None = shown
    try:
        with transaction.atomic():
            # Claim the step first: a concurrent answer to the same step finds the index
            # moved; the status condition keeps a session closed meanwhile (abandoned, a
            # withdrawal) closed. First, so that the session row is the first lock taken, as
            # a withdrawal takes it (dashboard.services.participant_withdraw): a trial row
            # locked before it could deadlock with the withdrawal's delete of the trials.
            claimed = Session.objects.filter(
                pk=session.pk,
                step_index=index,
                status__in=[Session.Status.CREATED, Session.Status.IN_PROGRESS],
            ).update(
                step_index=F("step_index") + 1,
                status=Session.Status.IN_PROGRESS,
                started_at=Coalesce(F("started_at"), now),
                last_activity_at=now,
            )
            if claimed != 1:
                raise _Raced()
            if declared is phases.BASE_RATE_FROM:
                br = _base_rate(session=session, study=study, step=expected, e1=value)
            response = Response.objects.create(
                session=session,
                event_id=expected.event_id,
                phase=phase,
                value=value,
                rt_ms=rt_ms,
                onset_at=onset_at,
                received_at=now,
                client_id=client_id,
            )
    except (IntegrityError, _Raced):
        replay = _replay(session=session, answer=answer, steps=steps)
        if replay is not None:
            return replay
        raise Conflict(
            "This step was answered already (another tab?).", code="already_answered"
        ) from None
    if declared is not phases.BASE_RATE_FROM:
        br = None
    return Recorded(response, expected.code, True, br, index + 1, total)


class _Raced(Exception):
    pass


# The usual answer reads what it needs of the session, its participant and its study in one
# query (no model instances: building three whole rows cost more CPU than the rest of the
# request), then claims the step and inserts the row in one statement. A data-modifying CTE
# is atomic, so a failed INSERT (a client_id seen before) undoes the claim; a base-rate screen
# whose value is not the trial's base rate claims nothing. Table names come from the models,
# never from input.
_SESSION_CONTEXT = f"""
SELECT s.id, s.plan, s.step_index, s.status, p.withdrawn_at IS NOT NULL,
    st.scale_min, st.scale_max, st.min_br_view_ms, st.br_mode,
    {", ".join(f"st.{flag}" for flag in STEP_FLAGS)}
FROM {Session._meta.db_table} s
JOIN {Participant._meta.db_table} p ON p.id = s.participant_id
JOIN {Study._meta.db_table} st ON st.id = p.study_id
WHERE s.token = %s
"""  # noqa: S608

_CLAIM_AND_INSERT = f"""
WITH claimed AS (
    UPDATE {Session._meta.db_table} s SET step_index = step_index + 1, status = 'in_progress',
        started_at = COALESCE(started_at, %(now)s), last_activity_at = %(now)s
    WHERE s.id = %(sid)s AND s.token = %(token)s AND s.step_index = %(idx)s
      AND s.status IN ('created', 'in_progress')
      AND EXISTS (
          SELECT 1 FROM {Participant._meta.db_table} p
          JOIN {Study._meta.db_table} st ON st.id = p.study_id
          WHERE p.id = s.participant_id AND p.withdrawn_at IS NULL
            AND st.scale_min = %(scale_min)s AND st.scale_max = %(scale_max)s
            AND st.min_br_view_ms = %(min_br_ms)s AND st.br_mode = %(br_mode)s
            {"".join(f" AND st.{flag} = %({flag})s" for flag in STEP_FLAGS)})
      AND (%(phase)s <> '{phases.BR.name}' OR EXISTS (
          SELECT 1 FROM {Trial._meta.db_table} t
          WHERE t.session_id = %(sid)s AND t.event_id = %(eid)s AND t.br = %(value)s))
    RETURNING s.id
)
INSERT INTO {Response._meta.db_table}
    (session_id, event_id, phase, value, rt_ms, onset_at, received_at, client_id)
SELECT id, %(eid)s, %(phase)s, %(value)s, %(rt)s, %(onset)s, %(now)s, %(cid)s FROM claimed
RETURNING id,
    (SELECT br FROM {Trial._meta.db_table} t WHERE t.session_id = %(sid)s AND t.event_id = %(eid)s)
"""  # noqa: S608

_OPEN = (Session.Status.CREATED, Session.Status.IN_PROGRESS)
# The phases whose answer reads or draws the trial's base rate.
_DRAWS_OR_SHOWS = (phases.BASE_RATE_FROM, phases.BR)


@dataclass(frozen=True, slots=True)
class _Context:
    """What the answers of a session are checked against and that stays as it is while the
    session runs: where each step is, its event, the study's settings (the plan is written
    once, at enrolment; study_update refuses to change the settings the steps and the scale
    come from once a session exists). The claim statement still compares every setting with
    the study's row, so an entry that went stale stores nothing: the general path answers,
    from the database, and the entry is dropped."""

    sid: int
    positions: dict[tuple[str, str], int]  # (event, phase) -> index; an ambiguous pair absent
    event_ids: tuple[int, ...]
    total: int
    scale_min: int
    scale_max: int
    min_br_ms: int
    br_mode: str
    flags: dict[str, bool]


# Each process's contexts of the sessions it answered lately, by token, oldest first: the
# usual answer is then one statement. About 16 kB per session of 124 steps.
_contexts: OrderedDict[str, _Context] = OrderedDict()
_contexts_lock = threading.Lock()  # a server's threads (gthread, granian) share them
CONTEXTS_KEPT = env_int("ANSWER_CONTEXTS_KEPT", 4096)


def _context(row: tuple[Any, ...]) -> _Context:
    sid, plan, _index, _status, _withdrawn, scale_min, scale_max, min_br_ms, br_mode, *flags = row
    if isinstance(plan, str):  # Django reads jsonb as text; JSONField decodes it
        plan = json.loads(plan)
    config = dict(zip(STEP_FLAGS, flags, strict=True))
    steps = session_steps(plan, config)
    positions: dict[tuple[str, str], int] = {}
    seen: set[tuple[str, str]] = set()
    for i, step in enumerate(steps):
        key = (step.code, step.phase)
        if key in seen:
            positions.pop(key, None)  # never fast: the general path finds which is meant
        else:
            seen.add(key)
            positions[key] = i
    return _Context(
        sid=sid,
        positions=positions,
        event_ids=tuple(step.event_id for step in steps),
        total=len(steps),
        scale_min=scale_min,
        scale_max=scale_max,
        min_br_ms=min_br_ms,
        br_mode=br_mode,
        flags=config,
    )


def _remember(token: str, context: _Context) -> None:
    with _contexts_lock:
        _contexts[token] = context
        while len(_contexts) > CONTEXTS_KEPT:
            _contexts.popitem(last=False)


def _forget(token: str) -> None:
    with _contexts_lock:
        _contexts.pop(token, None)


def record_fast(*, token: str, answer: Answer) -> Recorded | None:
    """response_record's fast path (PostgreSQL): the session's next step with a fixed base
    rate, in one statement; two for a session this process has not answered yet (its
    context is read first). Raises NotFound for an unknown token.

    None hands the answer to the general path, with nothing written; it explains any
    refusal: a race, a replayed client_id, a base rate not the one shown, an answer out of
    order or off the scale, an adaptive draw, a closed session, a withdrawal.
    """
    if not token_wellformed(token):
        raise NotFound("Unknown session.")
    context = _contexts.get(token)
    key = (answer.event, answer.phase)
    if context is None:
        with prepared_cursor() as cursor:
            cursor.execute(_SESSION_CONTEXT, [token])
            row = cursor.fetchone()
        if row is None:
            raise NotFound("Unknown session.")
        context = _context(row)
        _remember(token, context)
        index, status, withdrawn = row[2], row[3], row[4]
        if status not in _OPEN or withdrawn or context.positions.get(key) != index:
            return None
    else:
        with _contexts_lock:
            if token in _contexts:
                _contexts.move_to_end(token)
        found = context.positions.get(key)
        if found is None:
            return None
        index = found
    declared = phases.BY_NAME[answer.phase]
    # Checked against the context; the statement checks the context against the study. The
    # trial's base rate is not read here: the statement stores nothing unless it is the
    # value sent, and the general path then says why.
    refusal = answer_refusal(
        phase=declared,
        value=answer.value,
        rt_ms=answer.rt_ms,
        scale_min=context.scale_min,
        scale_max=context.scale_max,
        min_br_view_ms=context.min_br_ms,
        base_rate=None,
    )
    if refusal is not None:
        return None
    if declared in _DRAWS_OR_SHOWS and context.br_mode != Study.BaseRateMode.FIXED:
        return None  # an adaptive draw: the general path
    now = timezone.now()
    params: dict[str, Any] = {
        "sid": context.sid,
        "token": token,
        "idx": index,
        "eid": context.event_ids[index],
        "phase": answer.phase,
        "value": answer.value,
        "rt": answer.rt_ms,
        "onset": answer.onset_at,
        "now": now,
        "cid": answer.client_id,
        "scale_min": context.scale_min,
        "scale_max": context.scale_max,
        "min_br_ms": context.min_br_ms,
        "br_mode": context.br_mode,
        **context.flags,
    }
    try:
        # Inside a caller's transaction (tests) a failed statement needs its savepoint;
        # in autocommit (production) it costs nothing to leave out.
        with (
            transaction.atomic() if connection.in_atomic_block else nullcontext(),
            prepared_cursor() as cursor,
        ):
            cursor.execute(_CLAIM_AND_INSERT, params)
            inserted = cursor.fetchone()
    except IntegrityError:
        inserted = None
    if inserted is None:
        _forget(token)  # read again next time, in case it went stale
        return None
    pk, br = inserted
    response = StoredAnswer(
        pk=pk,
        client_id=answer.client_id,
        phase=answer.phase,
        value=answer.value,
        rt_ms=answer.rt_ms,
        onset_at=answer.onset_at,
        received_at=now,
    )
    br = br if declared is phases.BASE_RATE_FROM else None
    return Recorded(response, answer.event, True, br, index + 1, context.total)


def _replay(*, session: Session, answer: Answer, steps: list[Step]) -> Recorded | None:
    """The answer already stored under this client_id, exactly as it was first returned.

    A retry sends the same body; the same client_id with another answer in it (another
    session's, or another value) is a client bug, refused so that it is seen.
    """
    stored = Response.objects.select_related("event").filter(client_id=answer.client_id).first()
    if stored is None:
        return None
    if stored.session_id != session.pk:
        raise Conflict("This client_id belongs to another answer.", code="client_id_reused")
    sent = (answer.event, answer.phase, answer.value, answer.rt_ms)
    if (stored.event.code, stored.phase, stored.value, stored.rt_ms) != sent:
        raise Conflict(
            "This client_id was sent before with another answer.", code="client_id_reused"
        )
    # Progress as it was when the row was stored, so that a replay is byte-for-byte the
    # first answer (steps are answered in order: the row's step is the done-th one).
    done = next(
        (
            i + 1
            for i, s in enumerate(steps)
            if s.event_id == stored.event_id and s.phase == stored.phase
        ),
        session.step_index,
    )
    br = None
    if stored.phase == phases.BASE_RATE_FROM.name:
        br = (
            Trial.objects.filter(session=session, event_id=stored.event_id)
            .values_list("br", flat=True)
            .first()
        )
    return Recorded(stored, stored.event.code, False, br, done, len(steps))


def _refuse_out_of_order(*, session: Session, steps: list[Step], event: str, phase: str) -> None:
    """Why an answer that is not the next step is refused (always raises)."""
    position = next((i for i, s in enumerate(steps) if (s.code, s.phase) == (event, phase)), None)
    if all(s.code != event for s in steps):
        unknown = InvalidInput(
            f"No event '{event}' in this session.",
            fields={"event": [f"No event '{event}' in this session."]},
        )
    else:
        unknown = InvalidInput(
            f"This session has no '{phase}' step for '{event}'.",
            fields={"phase": [f"'{phase}' is not a step of this session."]},
        )
    refuse_not_next(
        session=session,
        steps=steps,
        position=position,
        unknown=unknown,
        label=f"'{phase}' of '{event}'",
    )


def refuse_not_next(
    *, session: Session, steps: list[Step], position: int | None, unknown: InvalidInput, label: str
) -> NoReturn:
    """The refusal of an answer to `steps[position]` (None: no such step, refused with
    `unknown`) when the session's next step is another: the task's answers and the
    questionnaire items share it."""
    if session.status == Session.Status.COMPLETED:
        raise Conflict("This session is complete.", code="session_closed")
    if session.status == Session.Status.ABANDONED:
        raise Conflict("This session was closed.", code="session_closed")
    if position is None:
        raise unknown
    if position < session.step_index:
        # A second tab (or a stale page) answering a step that is stored already.
        raise Conflict("This step was answered already (another tab?).", code="already_answered")
    expected = steps[session.step_index] if session.step_index < len(steps) else None
    if expected is None:
        raise Conflict("Every step is answered: complete the session.", code="nothing_left")
    raise Conflict(
        f"{label} is not the next step.",
        code="out_of_order",
        extra={"next": step_ref(expected)},
    )


def _refuse_if_unacceptable(
    phase: phases.Phase,
    answer: Answer,
    *,
    scale_min: int,
    scale_max: int,
    min_br_view_ms: int,
    base_rate: int | None,
) -> None:
    """Raise InvalidInput when protocol.answers says the answer cannot be stored."""
    refusal = answer_refusal(
        phase=phase,
        value=answer.value,
        rt_ms=answer.rt_ms,
        scale_min=scale_min,
        scale_max=scale_max,
        min_br_view_ms=min_br_view_ms,
        base_rate=base_rate,
    )
    if refusal is not None:
        raise InvalidInput(refusal.message, fields={refusal.field: [refusal.detail]})


def _shown_base_rate(session: Session, step: Step) -> int:
    """The base rate a base-rate screen showed: its trial's, drawn at its E1."""
    br = (
        Trial.objects.filter(session=session, event_id=step.event_id)
        .values_list("br", flat=True)
        .first()
    )
    if br is None:  # pragma: no cover - the screen follows its E1, which drew the rate
        raise Conflict("The base rate is not drawn yet.", code="out_of_order")
    return br


def _base_rate(*, session: Session, study: Study, step: Step, e1: int) -> int:
    """The trial's base rate; in adaptive mode it is drawn now, from the E1 just given."""
    trial = Trial.objects.filter(session=session, event_id=step.event_id).first()
    if trial is None:  # pragma: no cover - every planned event has a trial row
        raise NotFound("Unknown event.")
    if trial.br is not None:
        return trial.br
    br, valence = adaptive_base_rate(
        e1=e1,
        wanted=trial.planned_valence or "good",
        low=study.scale_min,
        high=study.scale_max,
        d_min=study.adaptive_d_min,
        d_max=study.adaptive_d_max,
    )
    if valence != trial.planned_valence:
        # Keep half good, half bad: give this trial's planned valence to an undrawn one.
        swap = (
            Trial.objects.filter(
                session=session, br__isnull=True, planned_valence=valence, practice=False
            )
            .exclude(pk=trial.pk)
            .first()
        )
        if swap is not None:
            Trial.objects.filter(pk=swap.pk).update(planned_valence=trial.planned_valence)
    Trial.objects.filter(pk=trial.pk, br__isnull=True).update(br=br, planned_valence=valence)
    return br


def adaptive_base_rate(
    *, e1: int, wanted: str, low: int, high: int, d_min: int, d_max: int
) -> tuple[int, str]:
    """BR = E1 - d (good news) or E1 + d (bad news), d from [d_min, d_max], inside [low, high].

    When the wanted direction has no room (E1 near a scale end) the other one is used.
    """
    for valence in (wanted, "bad" if wanted == "good" else "good"):
        sign = -1 if valence == "good" else 1
        feasible = [d for d in range(d_min, d_max + 1) if low <= e1 + sign * d <= high]
        if feasible:
            return e1 + sign * _rng.choice(feasible), valence
    raise InvalidInput("The scale leaves no room for an adaptive base rate.")


@dataclass(frozen=True)
class Completion:
    completion_code: str
    redirect_url: str
    participant: Participant


def session_complete(*, token: str) -> Completion:
    """Mark a fully answered session completed and queue its scoring after commit."""
    session = session_for_token(token)
    study = session.participant.study
    if session.status == Session.Status.COMPLETED:
        return Completion(
            session.completion_code, completion_redirect(study, session), session.participant
        )
    if session.status == Session.Status.ABANDONED:
        raise Conflict("This session was closed.", code="session_closed")
    steps = steps_of(session)
    if session.step_index < len(steps):
        missing = [step_ref(s) for s in steps[session.step_index :]]
        raise Conflict(
            f"{len(missing)} answers are still missing.",
            code="incomplete",
            extra={"missing": missing},
        )
    code = study.completion_code or new_completion_code()
    with transaction.atomic():
        updated = Session.objects.filter(
            pk=session.pk, status__in=[Session.Status.CREATED, Session.Status.IN_PROGRESS]
        ).update(
            status=Session.Status.COMPLETED,
            completed_at=timezone.now(),
            completion_code=code,
            last_activity_at=timezone.now(),
        )
        if updated == 1:
            _enqueue_scoring(session.pk)
    session.refresh_from_db()
    if session.status != Session.Status.COMPLETED:
        raise Conflict("This session was closed.", code="session_closed")
    return Completion(
        session.completion_code, completion_redirect(study, session), session.participant
    )


def completion_redirect(study: Study, session: Session) -> str:
    """The recruiter's completion URL with `{completion_code}` filled in (URL-quoted)."""
    if not study.redirect_url:
        return ""
    return study.redirect_url.replace("{completion_code}", quote(session.completion_code, safe=""))


def _enqueue_scoring(session_id: int) -> None:
    from scoring.services import score_enqueue

    score_enqueue(session_id=session_id)


def payload_summary(recorded: Recorded) -> dict[str, Any]:
    """The stored row as the participant API returns it."""
    r = recorded.response
    body: dict[str, Any] = {
        "id": r.pk,
        "client_id": str(r.client_id),
        "event": recorded.event_code,
        "phase": r.phase,
        "value": r.value,
        "rt_ms": r.rt_ms,
        "onset_at": r.onset_at.isoformat() if r.onset_at else None,
        "received_at": r.received_at.isoformat(),
        "progress": {"done": recorded.done, "total": recorded.total},
    }
    if r.phase == phases.BASE_RATE_FROM.name:
        body["br"] = recorded.br
    return body
