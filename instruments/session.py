"""Questionnaire items inside the participant's session (DESIGN.md, participant API).

A self-report instrument attached to a timepoint, before or after the task, becomes one
step per item of that timepoint's sessions (trials.steps, phase `item`). The items are
drawn into the session's plan when the session is created; they are answered on the
session's responses endpoint with the task's guarantees: idempotent by client_id, in the
plan's order (the same step counter as the task's answers), and every value checked
against the instrument's definition (its options, or its min and max). A required item
cannot be skipped; an optional one is skipped with the value null.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from instruments.definition import Instrument as Definition, answer_error
from instruments.models import Instrument, ItemAnswer, StudyInstrument
from protocol import phases
from trials.models import Response, Session
from trials.services.errors import Conflict, InvalidInput
from trials.services.responses import refuse_not_next, session_for_token, steps_of
from trials.steps import Step

_OPEN = (Session.Status.CREATED, Session.Status.IN_PROGRESS)


def study_item_plans(*, study_id: int) -> dict[int, dict[str, list[list[Any]]]]:
    """Per timepoint id, the plan's `items_before` and `items_after` for a new session
    there: every item of each self-report instrument attached, in the attachment's order
    and the instrument's item order (one query). A timepoint without any is left out, and
    so is an empty list."""
    plans: dict[int, dict[str, list[list[Any]]]] = {}
    links = (
        StudyInstrument.objects.filter(study_id=study_id, instrument__kind="self_report")
        .select_related("instrument")
        .order_by("order", "id")
    )
    for link in links:
        key = "items_before" if link.position == StudyInstrument.Position.BEFORE else "items_after"
        definition = link.instrument.parsed()
        plans.setdefault(link.timepoint_id, {}).setdefault(key, []).extend(
            [link.instrument_id, definition.code, item.code] for item in definition.items
        )
    return plans


def _texts(texts: dict[str, str], language: str) -> tuple[str, str]:
    """(text, its language): the session's language, else English (every file has it)."""
    if texts.get(language):
        return texts[language], language
    return texts.get("en", ""), "en"


def items_state(*, steps: list[Step], remaining: list[Step], language: str) -> list[dict[str, Any]]:
    """The remaining item steps as the session state lists them, in order (one query).

    Each is `{event: null, phase: "item", kind: "item", block: "questionnaire", practice: false,
    instrument, item, text, options: [{value, label}]}` (DESIGN.md), with `min`/`max`
    (and `unit`) instead of options for a number, and what the screen needs besides:
    `required`, the instrument's `instrument_name` and `instructions`, `number` and
    `count` (the item's place among the instrument's items in this session) and `lang`,
    the language of the texts (English where the instrument has no text in the session's
    language).
    """
    wanted = [s for s in remaining if s.is_item]
    if not wanted:
        return []
    ids = {s.instrument_id for s in wanted}
    definitions: dict[int, Definition] = {
        row.pk: row.parsed() for row in Instrument.objects.filter(pk__in=ids)
    }
    places: dict[tuple[str, str], tuple[int, int]] = {}
    for code in {s.instrument for s in wanted}:
        own = [s.item for s in steps if s.is_item and s.instrument == code]
        for i, item_code in enumerate(own):
            places[(code, item_code)] = (i + 1, len(own))
    out = []
    for step in wanted:
        definition = definitions.get(step.instrument_id)
        item = definition.item(step.item) if definition is not None else None
        number, count = places[(step.instrument, step.item)]
        body: dict[str, Any] = {
            "event": None,
            "phase": step.phase,
            "kind": phases.ITEM.kind.value,
            "block": step.block,
            "practice": False,
            "instrument": step.instrument,
            "item": step.item,
            "number": number,
            "count": count,
        }
        if definition is None or item is None:
            # The instrument was changed under a session under way (an import refuses to
            # drop answered items, not planned ones): asked by its code, any whole number.
            body.update(text=step.item, lang="en", options=[], required=False)
            body.update(instrument_name=step.instrument, instructions="")
            out.append(body)
            continue
        text, lang = _texts(item.text, language)
        body["text"] = text
        body["lang"] = lang
        body["instrument_name"] = _texts(definition.name, lang)[0]
        body["instructions"] = _texts(definition.instructions, lang)[0]
        if item.numeric:
            body["options"] = []
            body["min"] = item.minimum
            body["max"] = item.maximum
            if item.unit:
                body["unit"] = _texts(item.unit, lang)[0]
        else:
            body["options"] = [
                {"value": o.value, "label": _texts(o.label, lang)[0]} for o in item.options
            ]
        body["required"] = item.required
        out.append(body)
    return out


@dataclass(frozen=True)
class ItemRecorded:
    answer: ItemAnswer
    instrument: str
    created: bool
    done: int
    total: int


class _Raced(Exception):
    pass


def item_record(
    *,
    token: str,
    client_id: uuid.UUID,
    instrument: str,
    item: str,
    value: int | None,
    rt_ms: int,
    onset_at: datetime | None,
) -> ItemRecorded:
    """Store a questionnaire answer if its item is the session's next step; a repeated
    client_id returns the stored answer and writes nothing; any refusal stores nothing."""
    session = session_for_token(token)
    steps = steps_of(session)
    index = session.step_index
    expected = steps[index] if index < len(steps) else None
    sent = (instrument, item, value, rt_ms)
    closed = session.status not in _OPEN
    if (
        closed
        or expected is None
        or not expected.is_item
        or (expected.instrument, expected.item) != (instrument, item)
    ):
        replay = _replay(session=session, client_id=client_id, sent=sent, steps=steps)
        if replay is not None:
            return replay
        _refuse_out_of_order(session=session, steps=steps, instrument=instrument, item=item)
    assert expected is not None
    if session.participant.withdrawn_at is not None:
        raise Conflict("This participant has withdrawn.", code="withdrawn")
    row = Instrument.objects.filter(pk=expected.instrument_id).first()
    definition = row.parsed() if row is not None else None
    question = definition.item(item) if definition is not None else None
    if question is not None:
        problem = answer_error(question, value)
        if problem is not None:
            code = "required" if value is None else "invalid"
            raise _invalid(problem, code=code, instrument=instrument, item=item)
    elif value is None:
        raise _invalid(
            "This item is required: it cannot be skipped.",
            code="required",
            instrument=instrument,
            item=item,
        )
    # A client_id stored before with this very item would have moved the step on; with
    # another item it fails the insert below and is refused as reused.
    if Response.objects.filter(client_id=client_id).exists():
        raise Conflict("This client_id belongs to another answer.", code="client_id_reused")
    now = timezone.now()
    try:
        with transaction.atomic():
            # Claim the step as a task answer does (trials.services.responses): the session
            # row first, conditional on the step counter and an open session.
            claimed = Session.objects.filter(
                pk=session.pk, step_index=index, status__in=_OPEN
            ).update(
                step_index=F("step_index") + 1,
                status=Session.Status.IN_PROGRESS,
                started_at=Coalesce(F("started_at"), now),
                last_activity_at=now,
            )
            if claimed != 1:
                raise _Raced()
            answer = ItemAnswer.objects.create(
                session=session,
                participant_id=session.participant_id,
                instrument_id=expected.instrument_id,
                item=item,
                value=value,
                source=ItemAnswer.Source.PARTICIPANT,
                rt_ms=rt_ms,
                onset_at=onset_at,
                answered_at=now,
                client_id=client_id,
            )
    except (IntegrityError, _Raced):
        replay = _replay(session=session, client_id=client_id, sent=sent, steps=steps)
        if replay is not None:
            return replay
        raise Conflict(
            "This step was answered already (another tab?).", code="already_answered"
        ) from None
    return ItemRecorded(answer, instrument, True, index + 1, len(steps))


def _invalid(message: str, *, code: str, instrument: str, item: str) -> InvalidInput:
    error = InvalidInput(
        f"{instrument} {item}: {message} Nothing was stored.", fields={"value": [message]}
    )
    error.code = code
    return error


def _replay(
    *, session: Session, client_id: uuid.UUID, sent: tuple[Any, ...], steps: list[Step]
) -> ItemRecorded | None:
    """The answer stored under this client_id, as it was first returned; None if none."""
    stored = ItemAnswer.objects.select_related("instrument").filter(client_id=client_id).first()
    if stored is None:
        return None
    if stored.session_id != session.pk:
        raise Conflict("This client_id belongs to another answer.", code="client_id_reused")
    if (stored.instrument.code, stored.item, stored.value, stored.rt_ms) != sent:
        raise Conflict(
            "This client_id was sent before with another answer.", code="client_id_reused"
        )
    done = next(
        (
            i + 1
            for i, s in enumerate(steps)
            if s.is_item and (s.instrument, s.item) == (stored.instrument.code, stored.item)
        ),
        session.step_index,
    )
    return ItemRecorded(stored, stored.instrument.code, False, done, len(steps))


def _refuse_out_of_order(
    *, session: Session, steps: list[Step], instrument: str, item: str
) -> None:
    """Why an item answer that is not the next step is refused (always raises)."""
    position = next(
        (
            i
            for i, s in enumerate(steps)
            if s.is_item and (s.instrument, s.item) == (instrument, item)
        ),
        None,
    )
    if all(s.instrument != instrument for s in steps):
        unknown = InvalidInput(
            f"No instrument '{instrument}' in this session.",
            fields={"instrument": [f"'{instrument}' is not asked in this session."]},
        )
    else:
        unknown = InvalidInput(
            f"'{instrument}' has no item '{item}' in this session.",
            fields={"item": [f"'{item}' is not an item of '{instrument}' here."]},
        )
    refuse_not_next(
        session=session,
        steps=steps,
        position=position,
        unknown=unknown,
        label=f"'{item}' of '{instrument}'",
    )


def item_payload_summary(recorded: ItemRecorded) -> dict[str, Any]:
    """The stored answer as the participant API returns it (the task answer's shape, with
    `event` null and the instrument and item named)."""
    a = recorded.answer
    return {
        "id": a.pk,
        "client_id": str(a.client_id),
        "event": None,
        "phase": phases.ITEM.name,
        "instrument": recorded.instrument,
        "item": a.item,
        "value": a.value,
        "rt_ms": a.rt_ms,
        "onset_at": a.onset_at.isoformat() if a.onset_at else None,
        "received_at": a.answered_at.isoformat(),
        "progress": {"done": recorded.done, "total": recorded.total},
    }
