"""Enrolment: participants, arms, Latin-square lists and the sessions of each timepoint."""

import secrets
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from trials.models import (
    Arm,
    Event,
    EventList,
    Participant,
    ParticipantIdentity,
    Session,
    Study,
    StudyEventList,
    Timepoint,
    Trial,
)
from trials.services.errors import Conflict, InvalidInput, NotFound
from trials.services.responses import token_wellformed
from trials.services.withdrawn import identity_withdrawn

_rng = secrets.SystemRandom()


@dataclass(frozen=True)
class Enrolment:
    participant: Participant
    session: Session
    created: bool


def study_language_pick(*, study: Study, wanted: str | None) -> str:
    """The wanted language when the study offers it, else the study's first."""
    languages = list(study.languages) or ["en"]
    if wanted:
        short = wanted.split("-")[0].lower()
        if short in languages:
            return short
    return str(languages[0])


def study_enrol(
    *,
    study: Study,
    external_id: str | None = None,
    source: str = "",
    params: dict[str, Any] | None = None,
    arm_code: str | None = None,
    language: str | None = None,
) -> Enrolment:
    """Create a participant and their first session; a known external id gets theirs back."""
    if study.status != Study.Status.OPEN:
        raise Conflict("This study is not accepting participants.", code="study_not_open")
    external_id = (external_id or "").strip() or None
    if external_id and len(external_id) > 200:
        raise InvalidInput("external_id is too long.", fields={"external_id": ["At most 200."]})
    if external_id and identity_withdrawn(study=study, external_id=external_id):
        # Sticky withdrawal (trials.services.withdrawn): staff reinstate, the id never does.
        raise Conflict("This participant has withdrawn from this study.", code="withdrawn")
    lang = study_language_pick(study=study, wanted=language)

    # Everything a new session is drawn from is read before the study lock: the lock, which
    # every enrolment of the study waits for, then covers only the counts and the inserts.
    layout = study_layout(study)
    if not layout.timepoints:
        raise Conflict("This study has no timepoint yet.", code="study_not_ready")
    if not layout.lists:
        raise Conflict("This study has no event list yet.", code="study_not_ready")
    try:
        with transaction.atomic():
            # Serialises enrolments of one study so arm and list balancing see every count.
            Study.objects.select_for_update().filter(pk=study.pk).first()
            if external_id:
                known = (
                    ParticipantIdentity.objects.select_related("participant")
                    .filter(study=study, external_id=external_id)
                    .first()
                )
                if known is not None:
                    participant = known.participant
                    if participant.withdrawn_at is not None:
                        raise Conflict("This participant has withdrawn.", code="withdrawn")
                    return Enrolment(participant, participant_current_session(participant), False)

            arm = _arm_pick(study=study, arm_code=arm_code)
            participant = Participant.objects.create(
                study=study,
                arm=arm,
                sequence=_sequence_pick(study=study, arm=arm, n_lists=len(layout.lists)),
                language=lang,
                consented_at=timezone.now(),
            )
            if external_id:
                ParticipantIdentity.objects.create(
                    participant=participant,
                    study=study,
                    source=source or "participant",
                    external_id=external_id,
                    params=params or {},
                )
            session = _session_insert(
                participant=participant, timepoint=layout.timepoints[0], layout=layout
            )
    except IntegrityError as exc:  # pragma: no cover - the study lock prevents it
        raise Conflict("This id is already enrolled.", code="duplicate") from exc
    return Enrolment(participant, session, True)


@dataclass(frozen=True)
class StudyLayout:
    """What a study's sessions are drawn from: its timepoints and, in Latin-square order, its
    event lists with their events."""

    timepoints: list[Timepoint]
    lists: list[tuple[EventList, list[Event]]]


def study_layout(study: Study) -> StudyLayout:
    """The study's timepoints, lists and events, in three queries."""
    timepoints = list(study.timepoints.order_by("order"))
    study_lists = list(
        StudyEventList.objects.filter(study=study).select_related("event_list").order_by("position")
    )
    events: dict[int, list[Event]] = {sl.event_list_id: [] for sl in study_lists}
    for event in (
        Event.objects.filter(event_list__in=list(events))
        .only("id", "event_list_id", "code", "base_rate", "practice", "position")
        .order_by("position", "id")
    ):
        events[event.event_list_id].append(event)
    return StudyLayout(
        timepoints, [(sl.event_list, events[sl.event_list_id]) for sl in study_lists]
    )


def _arm_pick(*, study: Study, arm_code: str | None) -> Arm:
    if arm_code:
        arm = Arm.objects.filter(study=study, code=arm_code).first()
        if arm is None:
            raise InvalidInput(
                f"Unknown arm '{arm_code}'.",
                fields={"arm": [f"No arm '{arm_code}' in this study."]},
            )
        return arm
    # Least-filled arm; ties go to the first created.
    arm = (
        Arm.objects.filter(study=study)
        .annotate(n=Count("participants", filter=Q(participants__withdrawn_at__isnull=True)))
        .order_by("n", "id")
        .first()
    )
    if arm is None:
        raise Conflict("This study has no arm yet.", code="study_not_ready")
    return arm


def _sequence_pick(*, study: Study, arm: Arm, n_lists: int) -> int:
    """The least-used row of the Latin square within the arm (ties: lowest row)."""
    counts = dict(
        Participant.objects.filter(study=study, arm=arm)
        .values_list("sequence")
        .annotate(n=Count("id"))
        .values_list("sequence", "n")
    )
    return min(range(n_lists), key=lambda row: (counts.get(row, 0), row))


def participant_current_session(participant: Participant) -> Session:
    """The first session not completed, else the latest one (none yet: the first one)."""
    sessions = list(participant.sessions.select_related("timepoint").order_by("timepoint__order"))
    if not sessions:
        # Sessions deleted by hand, or a participant created without one: start again.
        first = participant.study.timepoints.order_by("order").first()
        if first is None:
            raise Conflict("This study has no timepoint yet.", code="study_not_ready")
        return session_create(participant=participant, timepoint=first)
    for session in sessions:
        if session.status != Session.Status.COMPLETED:
            return session
    return sessions[-1]


def latin_square_list_position(*, sequence: int, timepoint_index: int, n_lists: int) -> int:
    """Row `sequence` of a cyclic Latin square: each list once per row and per column."""
    return (sequence + timepoint_index) % n_lists


def session_create(*, participant: Participant, timepoint: Timepoint) -> Session:
    """The session of a timepoint, its event orders drawn once; an existing one is returned."""
    existing = Session.objects.filter(participant=participant, timepoint=timepoint).first()
    if existing is not None:
        return existing
    layout = study_layout(participant.study)
    try:
        with transaction.atomic():
            return _session_insert(participant=participant, timepoint=timepoint, layout=layout)
    except IntegrityError:
        # Another request created this timepoint's session first: use it.
        return Session.objects.get(participant=participant, timepoint=timepoint)


def _session_insert(
    *, participant: Participant, timepoint: Timepoint, layout: StudyLayout
) -> Session:
    """Draw the event orders of a new session and insert it with its trials (two statements)."""
    study = participant.study
    timepoint_index = sum(1 for t in layout.timepoints if t.order < timepoint.order)
    position = latin_square_list_position(
        sequence=participant.sequence, timepoint_index=timepoint_index, n_lists=len(layout.lists)
    )
    event_list, events = layout.lists[position]
    practice = [e for e in events if e.practice]
    main = [e for e in events if not e.practice]
    if not main:
        raise Conflict(f"Event list '{event_list.name}' has no events.", code="study_not_ready")
    order1 = main[:]
    _rng.shuffle(order1)
    order2 = main[:]
    _rng.shuffle(order2)
    plan = {
        "practice": [[e.pk, e.code] for e in practice],
        "order1": [[e.pk, e.code] for e in order1],
        "order2": [[e.pk, e.code] for e in order2],
    }
    adaptive = study.br_mode == Study.BaseRateMode.ADAPTIVE
    valences = (["good", "bad"] * ((len(order1) + 1) // 2))[: len(order1)]
    _rng.shuffle(valences)
    planned = {e.pk: v for e, v in zip(order1, valences, strict=True)} if adaptive else {}
    pos2 = {e.pk: i + 1 for i, e in enumerate(order2)}
    session = Session.objects.create(
        participant=participant,
        timepoint=timepoint,
        event_list=event_list,
        language=participant.language,
        plan=plan,
    )
    Trial.objects.bulk_create(
        [
            Trial(
                session=session,
                event=e,
                practice=True,
                block1_position=i + 1,
                br=e.base_rate,
                br_mode=Study.BaseRateMode.FIXED,
            )
            for i, e in enumerate(practice)
        ]
        + [
            Trial(
                session=session,
                event=e,
                block1_position=i + 1,
                block2_position=pos2[e.pk],
                br=None if adaptive else e.base_rate,
                br_mode=study.br_mode,
                planned_valence=planned.get(e.pk, ""),
            )
            for i, e in enumerate(order1)
        ]
    )
    return session


@dataclass(frozen=True)
class ReturnVisit:
    """What the return link can do now: a session to go to, or a window to wait for."""

    session: Session | None
    state: str  # "go", "not_yet", "closed", "finished", "withdrawn"
    opens_at: Any = None
    closes_at: Any = None


def participant_return(*, token: str) -> ReturnVisit:
    """Start the next timepoint's session when its window is open."""
    participant = (
        Participant.objects.select_related("study").filter(token=token).first()
        if token_wellformed(token)
        else None
    )
    if participant is None:
        raise NotFound("Unknown link.")
    if participant.withdrawn_at is not None:
        return ReturnVisit(None, "withdrawn")
    sessions = list(participant.sessions.select_related("timepoint").order_by("timepoint__order"))
    if not sessions:
        return ReturnVisit(participant_current_session(participant), "go")
    latest = sessions[-1]
    if latest.status != Session.Status.COMPLETED:
        return ReturnVisit(latest, "go")
    following = (
        Timepoint.objects.filter(study=participant.study, order__gt=latest.timepoint.order)
        .order_by("order")
        .first()
    )
    if following is None:
        return ReturnVisit(latest, "finished")
    assert latest.completed_at is not None
    opens_at = latest.completed_at + following.opens_after
    closes_at = latest.completed_at + following.closes_after if following.closes_after else None
    now = timezone.now()
    if now < opens_at:
        return ReturnVisit(None, "not_yet", opens_at, closes_at)
    if closes_at is not None and now > closes_at:
        return ReturnVisit(None, "closed", opens_at, closes_at)
    if participant.study.status == Study.Status.CLOSED:
        return ReturnVisit(None, "closed", opens_at, closes_at)
    return ReturnVisit(
        session_create(participant=participant, timepoint=following), "go", opens_at, closes_at
    )
