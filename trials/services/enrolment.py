"""Enrolment: participants, arms, Latin-square lists and the sessions of each timepoint."""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
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
from trials.steps import plan_draw
from trials.visits import Visit, VisitStatus

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
    browser_key: str | None = None,
) -> Enrolment:
    """Create a participant and their first session, or resume the owner of a known id.

    A recruiter id is not a credential (issue 14.2): a known id resumes its participant only
    with proof that the request comes from them (see external_id_owner). Without it, a new
    participant is enrolled and its identity flagged `duplicate` for the lab, so the answer
    has the same shape whether or not the id was known and never carries another person's
    token.
    """
    if study.status != Study.Status.OPEN:
        raise Conflict("This study is not accepting participants.", code="study_not_open")
    external_id = (external_id or "").strip() or None
    if external_id and len(external_id) > 200:
        raise InvalidInput("external_id is too long.", fields={"external_id": ["At most 200."]})
    if external_id and identity_withdrawn(study=study, external_id=external_id):
        # Sticky withdrawal (trials.services.withdrawn): staff reinstate, the id never does.
        raise Conflict("This participant has withdrawn from this study.", code="withdrawn")
    lang = study_language_pick(study=study, wanted=language)
    digest = browser_key_digest(browser_key)

    # Everything a new session is drawn from is read before the study lock: the lock, which
    # every enrolment of the study waits for, then covers only the counts and the inserts.
    layout = study_layout(study)
    if not layout.timepoints:
        raise Conflict("This study has no timepoint yet.", code="study_not_ready")
    if not layout.lists:
        raise Conflict("This study has no event list yet.", code="study_not_ready")
    duplicate = False
    try:
        with transaction.atomic():
            # Serialises enrolments of one study so arm and list balancing see every count,
            # and so two submits of one browser's consent form make one participant.
            Study.objects.select_for_update().filter(pk=study.pk).first()
            if external_id:
                known = _identities(study=study, external_id=external_id)
                owner = _owner(study=study, external_id=external_id, known=known, digest=digest)
                if owner is not None:
                    return Enrolment(owner, participant_resume_session(owner), False)
                duplicate = bool(known)

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
                    duplicate=duplicate,
                    browser_key=digest,
                )
            session = _session_insert(
                participant=participant, timepoint=layout.timepoints[0], layout=layout
            )
    except IntegrityError as exc:  # pragma: no cover - the study lock prevents it
        raise Conflict("This id is already enrolled.", code="duplicate") from exc
    return Enrolment(participant, session, True)


# Prolific's ids are 24 hex characters (96 random bits): nobody finds another's by trying.
# SONA's and most clinics' ids are small integers or short codes, which anyone can guess.
_UNGUESSABLE_ID = re.compile(r"[A-Za-z0-9_-]{24,200}")


def external_id_unguessable(external_id: str) -> bool:
    """Whether an id is long and varied enough to serve as its own proof (Prolific's)."""
    return bool(_UNGUESSABLE_ID.fullmatch(external_id)) and len(set(external_id)) >= 8


def browser_key_digest(browser_key: str | None) -> str:
    """What is stored of a browser's key: its SHA-256 (blank without a key)."""
    if not browser_key:
        return ""
    return hashlib.sha256(browser_key.encode("utf-8", "replace")).hexdigest()


def _identities(*, study: Study, external_id: str) -> list[ParticipantIdentity]:
    return list(
        ParticipantIdentity.objects.select_related("participant", "participant__study")
        .filter(study=study, external_id=external_id)
        .order_by("duplicate", "id")
    )


def _owner(
    *, study: Study, external_id: str, known: list[ParticipantIdentity], digest: str
) -> Participant | None:
    # The browser that enrolled an id (original or duplicate) gets that participant back.
    if digest:
        for identity in known:
            if identity.browser_key and hmac.compare_digest(identity.browser_key, digest):
                return identity.participant
    original = next((i for i in known if not i.duplicate), None)
    if (
        original is not None
        and study.resume_by_external_id
        and external_id_unguessable(external_id)
    ):
        return original.participant
    return None


def external_id_owner(
    *, study: Study, external_id: str | None, browser_key: str | None
) -> Participant | None:
    """The participant a recruiter id resumes for this request, when it proves it is theirs.

    Proof is the enrolling browser's key (cookie), or, where the study allows it
    (`resume_by_external_id`), an id too long and random to guess (Prolific's).
    Withdrawn participants are never resumed.
    """
    external_id = (external_id or "").strip()
    if not external_id or len(external_id) > 200:
        return None
    known = _identities(study=study, external_id=external_id)
    owner = _owner(
        study=study, external_id=external_id, known=known, digest=browser_key_digest(browser_key)
    )
    if owner is None or owner.withdrawn_at is not None:
        return None
    return owner


@dataclass(frozen=True)
class StudyLayout:
    """What a study's sessions are drawn from: its timepoints and, in Latin-square order, its
    event lists with their events."""

    timepoints: list[Timepoint]
    lists: list[tuple[EventList, list[Event]]]
    # Per timepoint id, the questionnaire items asked before and after the task (the
    # plan's items_before / items_after; instruments.session).
    items: dict[int, dict[str, list[list[Any]]]] = field(default_factory=dict)


def study_layout(study: Study) -> StudyLayout:
    """The study's timepoints, lists and events, and the questionnaire items of each
    timepoint, in four queries."""
    from instruments.session import study_item_plans

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
        timepoints,
        [(sl.event_list, events[sl.event_list_id]) for sl in study_lists],
        study_item_plans(study_id=study.pk),
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
    adaptive = study.br_mode == Study.BaseRateMode.ADAPTIVE
    plan, planned = plan_draw(
        [(e.pk, e.code) for e in practice],
        [(e.pk, e.code) for e in main],
        adaptive=adaptive,
        rng=_rng,
    )
    # The self-report questionnaires of this timepoint, before and after the task (drawn
    # now, like the event orders: a later change of the setup leaves this session as it is).
    plan.update(layout.items.get(timepoint.pk, {}))
    by_pk = {e.pk: e for e in main}
    order1 = [by_pk[pk] for pk, _ in plan["order1"]]
    order2 = [by_pk[pk] for pk, _ in plan["order2"]]
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

    participant: Participant
    # "go", "not_yet", "waiting_anchor", "closed" (missed, or the study closed), "finished",
    # "withdrawn"
    state: str
    session: Session | None = None
    visit: Visit | None = None  # the visit concerned: the next one, or the last missed
    now: datetime | None = None

    @property
    def opens_at(self) -> datetime | None:
        return self.visit.opens_at if self.visit is not None else None

    @property
    def closes_at(self) -> datetime | None:
        return self.visit.closes_at if self.visit is not None else None


def participant_for_token(token: str) -> Participant:
    """The participant of a return-link token (one query); NotFound for anything else."""
    participant = (
        Participant.objects.select_related("study", "arm").filter(token=token).first()
        if token_wellformed(token)
        else None
    )
    if participant is None:
        raise NotFound("Unknown link.")
    return participant


def participant_return(*, token: str, now: datetime | None = None) -> ReturnVisit:
    """What the return link does now: start or resume the open visit, or say why not."""
    return participant_return_for(participant=participant_for_token(token), now=now)


def participant_return_for(*, participant: Participant, now: datetime | None = None) -> ReturnVisit:
    """The return link's decision for one participant (trials.visits via the selector)."""
    from trials.selectors import participant_visits

    now = now or timezone.now()
    if participant.withdrawn_at is not None:
        return ReturnVisit(participant, "withdrawn", now=now)
    row = participant_visits(participant=participant, now=now)
    if not row.sessions:
        # Sessions deleted by hand, or a participant created without one: start again.
        return ReturnVisit(participant, "go", participant_current_session(participant), now=now)
    following = row.next
    if following is None:
        missed = [v for v in row.visits if v.status == VisitStatus.MISSED]
        if missed:
            return ReturnVisit(participant, "closed", visit=missed[-1], now=now)
        return ReturnVisit(participant, "finished", visit=row.visits[-1], now=now)
    if following.status == VisitStatus.WAITING_ANCHOR:
        return ReturnVisit(participant, "waiting_anchor", visit=following, now=now)
    if following.status == VisitStatus.UPCOMING:
        return ReturnVisit(participant, "not_yet", visit=following, now=now)
    session = row.sessions.get(following.timepoint.order)
    if session is None:
        if participant.study.status == Study.Status.CLOSED:
            return ReturnVisit(participant, "closed", now=now)
        timepoint = Timepoint.objects.get(
            study_id=participant.study_id, order=following.timepoint.order
        )
        session = session_create(participant=participant, timepoint=timepoint)
    return ReturnVisit(participant, "go", session, visit=following, now=now)


def participant_resume_session(participant: Participant) -> Session:
    """The session a resumed participant is sent to: the open visit's, else the latest."""
    visit = participant_return_for(participant=participant)
    if visit.session is not None:
        return visit.session
    return participant.sessions.order_by("-timepoint__order").first() or (
        participant_current_session(participant)
    )
