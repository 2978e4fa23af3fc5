"""Writes of instruments: import a file, attach to timepoints, enter a clinician's rating,
score an instrument for a session."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.services import audit_record
from instruments.definition import (
    INSTRUMENT_SCORE_VERSION,
    FileError,
    InstrumentInvalid,
    answers_errors,
    instrument_parse,
    instrument_score,
)
from instruments.models import Instrument, InstrumentScore, ItemAnswer, Rating, StudyInstrument
from trials.models import Participant, Session, Study, Timepoint
from trials.services.errors import Conflict, InvalidInput, NotFound

SHIPPED_DIR = Path(__file__).resolve().parent / "data"
SHIPPED = ("demographics", "phq9", "qids_sr16", "lotr", "madrs")
# An instrument file is small (MADRS with its guide is some 20 KB); refuse anything huge.
IMPORT_MAX_BYTES = 1024 * 1024


def instrument_read(data: bytes | str) -> dict[str, Any]:
    """The file's JSON object; a syntax error is reported at its line and column."""
    if isinstance(data, bytes):
        if len(data) > IMPORT_MAX_BYTES:
            raise InstrumentInvalid([FileError("$", "the file is over 1 MB")])
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InstrumentInvalid(
                [FileError("$", f"not UTF-8 text (byte {exc.start})")]
            ) from None
    try:
        parsed = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InstrumentInvalid(
            [FileError("$", f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")]
        ) from None
    if not isinstance(parsed, dict):
        raise InstrumentInvalid([FileError("$", "the file must hold one JSON object")])
    return parsed


def instrument_import(*, data: bytes | str, actor: Any = None) -> tuple[Instrument, bool]:
    """Add or update an instrument from its file; (instrument, created).

    Every error is reported (InstrumentInvalid) and nothing is stored from a file with
    errors. Updating an instrument that already has answers may not remove or renumber
    their items: the answers keep pointing at codes of the definition.
    """
    raw = instrument_read(data)
    definition = instrument_parse(raw)
    with transaction.atomic():
        existing = Instrument.objects.select_for_update().filter(code=definition.code).first()
        if existing is not None:
            used = set(
                ItemAnswer.objects.filter(instrument=existing)
                .values_list("item", flat=True)
                .distinct()
            )
            codes = {i.code for i in definition.items}
            lost = sorted(used - codes)
            if lost:
                raise InstrumentInvalid(
                    [
                        FileError("$.items", f"{code!r} has stored answers: it cannot be removed")
                        for code in lost
                    ]
                )
            if existing.kind != definition.kind and used:
                raise InstrumentInvalid(
                    [FileError("$.kind", "the kind of an instrument with answers cannot change")]
                )
        fields = {
            "version": definition.version,
            "kind": definition.kind,
            "name": definition.name,
            "definition": raw,
            "source": definition.source,
            "licence": definition.licence,
        }
        instrument, created = Instrument.objects.update_or_create(
            code=definition.code, defaults=fields
        )
        if actor is not None:
            audit_record(
                actor=actor,
                action="instrument.import",
                target=definition.code,
                detail={"version": definition.version, "created": created},
            )
    return instrument, created


def instruments_load_shipped() -> list[Instrument]:
    """Import (or refresh) the instruments shipped in instruments/data (idempotent)."""
    return [
        instrument_import(data=(SHIPPED_DIR / f"{code}.json").read_bytes())[0] for code in SHIPPED
    ]


def instrument_attach(
    *,
    study: Study,
    timepoint: Timepoint,
    instrument: Instrument,
    position: str = StudyInstrument.Position.AFTER,
    order: int = 0,
) -> StudyInstrument:
    """Give an instrument at a timepoint (before or after the task); idempotent."""
    if timepoint.study_id != study.pk:
        raise InvalidInput("That timepoint is not one of this study's.")
    if position not in StudyInstrument.Position.values:
        raise InvalidInput(f"position must be one of {', '.join(StudyInstrument.Position.values)}.")
    link, _created = StudyInstrument.objects.update_or_create(
        timepoint=timepoint,
        instrument=instrument,
        defaults={"study": study, "position": position, "order": order},
    )
    return link


def instrument_detach(*, study: Study, link_id: int) -> StudyInstrument:
    """Stop giving an instrument at a timepoint; refused (Conflict) once it has answers there.

    The link is locked while the answers are counted, so two owners' clicks detach it once.
    """
    with transaction.atomic():
        link = (
            StudyInstrument.objects.select_for_update(of=("self",))
            .select_related("instrument")
            .filter(study=study, pk=link_id)
            .first()
        )
        if link is None:
            raise NotFound("No such instrument link in this study.")
        answered = ItemAnswer.objects.filter(
            session__timepoint_id=link.timepoint_id, instrument_id=link.instrument_id
        ).exists()
        if answered:
            raise Conflict(
                _("%(code)s has answers at this timepoint: it stays attached.")
                % {"code": link.instrument.code}
            )
        link.delete()
    return link


# ------------------------------------------------------------------- clinician ratings


def _rating_session(
    *, study: Study, participant: object, timepoint: object, instrument: object
) -> tuple[Session, Instrument]:
    """The session the rating belongs to; refuses what is unknown or not reached."""
    fields: dict[str, list[str]] = {}
    if isinstance(participant, bool) or not isinstance(participant, int):
        fields["participant"] = ["The participant's id (the exports' `participant`)."]
    if not isinstance(timepoint, str) or not timepoint:
        fields["timepoint"] = ["A timepoint label."]
    if not isinstance(instrument, str) or not instrument:
        fields["instrument"] = ["An instrument code."]
    if fields:
        raise InvalidInput("participant, timepoint and instrument are required.", fields=fields)
    assert isinstance(participant, int) and isinstance(timepoint, str)
    person = Participant.objects.filter(pk=participant, study=study).first()
    if person is None:
        raise NotFound(
            f"No participant {participant} in this study.",
            fields={"participant": ["Not a participant of this study."]},
        )
    if person.withdrawn_at is not None:
        raise Conflict(
            f"Participant {participant} has withdrawn: nothing more is recorded for them.",
            code="withdrawn",
        )
    point = Timepoint.objects.filter(study=study, label=timepoint).first()
    if point is None:
        raise NotFound(
            f"No timepoint {timepoint!r} in this study.",
            fields={"timepoint": ["Not a timepoint label of this study."]},
        )
    link = (
        StudyInstrument.objects.select_related("instrument")
        .filter(timepoint=point, instrument__code=instrument)
        .first()
    )
    if link is None:
        raise InvalidInput(
            f"{instrument!r} is not attached to {timepoint!r} in this study.",
            fields={"instrument": ["Attach it to the timepoint first (study setup)."]},
        )
    if link.instrument.kind != "clinician":
        raise InvalidInput(
            f"{instrument!r} is a self-report instrument: participants answer it in the session.",
            fields={"instrument": ["Not a clinician-rated instrument."]},
        )
    session = Session.objects.filter(participant=person, timepoint=point).first()
    if session is None:
        raise Conflict(
            f"Participant {participant} has not reached {timepoint!r} (no session there yet): "
            "a rating for a visit that has not started is refused.",
            code="timepoint_not_reached",
            fields={"timepoint": ["Not reached by this participant yet."]},
        )
    return session, link.instrument


def _rated_at(value: object) -> datetime:
    from django.utils.dateparse import parse_datetime

    if value is None:
        return timezone.now()
    moment = parse_datetime(value) if isinstance(value, str) else None
    if moment is None:
        raise InvalidInput(
            "rated_at must be an ISO 8601 date and time.",
            fields={"rated_at": ["ISO 8601, e.g. 2026-03-01T10:30:00Z."]},
        )
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    if moment > timezone.now() + timedelta(minutes=5):
        raise InvalidInput(
            "rated_at is in the future.", fields={"rated_at": ["Not after the present."]}
        )
    return moment


def rating_save(
    *,
    study: Study,
    participant: object,
    timepoint: object,
    instrument: object,
    items: object,
    rated_at: object = None,
    actor: Any,
) -> tuple[Rating, bool]:
    """Enter or edit a clinician's rating, every item checked; (rating, created).

    An edit replaces the values and keeps the previous ones, with who and when, in the
    audit log. The instrument's score is computed on entry. Any error stores nothing.
    """
    session, instrument_row = _rating_session(
        study=study, participant=participant, timepoint=timepoint, instrument=instrument
    )
    if not isinstance(items, dict) or not items:
        raise InvalidInput(
            "items must be an object {item code: value}.",
            fields={"items": ["An object {item code: value}."]},
        )
    definition = instrument_row.parsed()
    errors = answers_errors(definition, items, complete=True)
    if errors:
        raise InvalidInput(
            f"{len(errors)} item(s) of {definition.code} refused; nothing was stored.",
            fields={f"items.{code}": [message] for code, message in errors.items()},
        )
    moment = _rated_at(rated_at)
    now = timezone.now()
    values = {item.code: items.get(item.code) for item in definition.items}
    with transaction.atomic():
        rating, created = Rating.objects.select_for_update().get_or_create(
            session=session,
            instrument=instrument_row,
            defaults={"rated_at": moment, "entered_by": actor if _is_user(actor) else None},
        )
        previous: dict[str, int | None] = {}
        previous_rated_at = rating.rated_at
        if not created:
            previous = dict(
                ItemAnswer.objects.filter(session=session, instrument=instrument_row).values_list(
                    "item", "value"
                )
            )
            rating.rated_at = moment
            rating.entered_by = actor if _is_user(actor) else None
            rating.save(update_fields=["rated_at", "entered_by", "updated_at"])
        for code, value in values.items():
            ItemAnswer.objects.update_or_create(
                session=session,
                instrument=instrument_row,
                item=code,
                defaults={
                    "participant_id": session.participant_id,
                    "value": value,
                    "source": ItemAnswer.Source.CLINICIAN,
                    "answered_at": now,
                },
            )
        target = f"participant {session.participant_id} {session.timepoint.label} {definition.code}"
        detail: dict[str, Any] = {
            "participant": session.participant_id,
            "timepoint": session.timepoint.label,
            "instrument": definition.code,
            "rated_at": moment.isoformat(),
            "items": values,
        }
        if not created:
            detail["previous"] = {
                "rated_at": previous_rated_at.isoformat(),
                "items": previous,
            }
        audit_record(
            actor=actor,
            action="rating.create" if created else "rating.update",
            study=study.slug,
            target=target,
            detail=detail,
        )
        instrument_scores_store(session_id=session.pk, instrument_ids=[instrument_row.pk])
    return rating, created


def _is_user(actor: Any) -> bool:
    return bool(getattr(actor, "is_authenticated", False))


# ------------------------------------------------------------------------------ scores


def instrument_scores_store(
    *, session_id: int, instrument_ids: Iterable[int] | None = None
) -> list[InstrumentScore]:
    """(Re)compute the session's instrument scores from its stored answers; idempotent."""
    answers: dict[int, dict[str, int | None]] = {}
    rows = ItemAnswer.objects.filter(session_id=session_id)
    if instrument_ids is not None:
        rows = rows.filter(instrument_id__in=list(instrument_ids))
    for instrument_id, item, value in rows.values_list("instrument_id", "item", "value"):
        answers.setdefault(instrument_id, {})[item] = value
    instruments = Instrument.objects.in_bulk(list(answers))
    now = timezone.now()
    stored = []
    for instrument_id, given in answers.items():
        instrument = instruments[instrument_id]
        definition = instrument.parsed()
        if not definition.scored:
            continue
        score = instrument_score(definition, given)
        row, _created = InstrumentScore.objects.update_or_create(
            session_id=session_id,
            instrument=instrument,
            score_version=INSTRUMENT_SCORE_VERSION,
            defaults={
                "total": score.total,
                "n_answered": score.n_answered,
                "n_missing": score.n_missing,
                "status": score.status,
                "subscales": score.subscales,
                "scored_at": now,
            },
        )
        stored.append(row)
    return stored


def sessions_instruments_score(*, session_ids: Iterable[int]) -> int:
    """Score the self-report instruments of these sessions (the worker, with the task's
    scores); returns the rows written."""
    ids = list(
        ItemAnswer.objects.filter(
            session_id__in=list(session_ids), source=ItemAnswer.Source.PARTICIPANT
        )
        .values_list("session_id", flat=True)
        .distinct()
    )
    return sum(len(instrument_scores_store(session_id=pk)) for pk in ids)
