"""Reads of the trials app."""

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from django.db.models import Count, Exists, Max, Min, OuterRef, Q, QuerySet
from django.utils import timezone

from instruments.session import items_state
from protocol import phases
from trials.models import (
    Arm,
    Event,
    EventList,
    Participant,
    Session,
    Study,
    StudyEventList,
    StudyMembership,
    Timepoint,
    Trial,
    WithdrawnIdentity,
    study_config,
)
from trials.services.responses import adaptive_base_rate, completion_redirect, steps_of
from trials.steps import Step, plan_draw, session_steps
from trials.visits import (
    Anchor,
    TimepointSpec,
    Visit,
    VisitRecord,
    visit_next,
    visits_compute,
)

_KINDS: Final = {p.name: p.kind.value for p in phases.PHASES}


def _state_config(study: Study, lang: str) -> dict[str, Any]:
    return {
        "title": study.title_in(lang),
        "br_mode": study.br_mode,
        "min_br_view_ms": study.min_br_view_ms,
        "collect_ebr": study.collect_ebr,
        "collect_confidence": study.collect_confidence,
        "memory_test": study.memory_test,
        "ratings": study.ratings,
        "debrief": study.debrief_required,
        "debrief_text": study.text_for(study.debrief_text, lang),
    }


def _steps_payload(
    steps: Iterable[Step],
    text: Callable[[str], str],
    brs: dict[int, int | None],
    items: Iterator[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The steps as the session state lists them; `items` gives the questionnaire items'
    (instruments.session.items_state), in order."""
    return [
        next(items)
        if s.is_item
        else {
            "event": s.code,
            "text": text(s.code),
            "block": s.block,
            "phase": s.phase,
            # What the browser renders the step as (task.js holds no list of phases).
            "kind": _KINDS[s.phase],
            "practice": s.practice,
            "br": brs.get(s.event_id) if s.phase == phases.BR.name else None,
        }
        for s in steps
    ]


def session_state(*, session: Session, return_url: str | None = None) -> dict[str, Any]:
    """What the task page needs to run or resume a session (three queries).

    A completed session's `completion` carries `next_visit` (three more queries) when the
    caller gives the participant's absolute return link.
    """
    study = session.participant.study
    steps = steps_of(session)
    done = session.step_index
    remaining = steps[done:]
    answered_e1 = {s.event_id for s in steps[:done] if s.phase == "e1"}
    texts = {
        code: texts
        for code, texts in Event.objects.filter(event_list_id=session.event_list_id).values_list(
            "code", "texts"
        )
    }
    brs: dict[int, int | None] = {}
    if any(s.phase == "br" and s.event_id in answered_e1 for s in remaining):
        brs = dict(
            Trial.objects.filter(session=session, event_id__in=answered_e1).values_list(
                "event_id", "br"
            )
        )
    lang = session.language

    def text(code: str) -> str:
        t = texts.get(code, {})
        return str(t.get(lang) or t.get("en") or code)

    open_ = session.status in (Session.Status.CREATED, Session.Status.IN_PROGRESS)
    items = iter(items_state(steps=steps, remaining=remaining, language=lang) if open_ else [])

    completion: dict[str, Any] | None = None
    if session.status == Session.Status.COMPLETED:
        completion = {
            "completion_code": session.completion_code,
            "redirect_url": completion_redirect(study, session),
        }
        if return_url is not None:
            completion["next_visit"] = next_visit_payload(
                participant_visits(participant=session.participant).next, url=return_url
            )
    return {
        "status": session.status,
        "language": lang,
        "scale": {"min": study.scale_min, "max": study.scale_max},
        "progress": {"done": done, "total": len(steps)},
        "config": _state_config(study, lang),
        # Whether a step of the task itself is answered (questionnaire items may come first):
        # the instructions and the quiz come before the first one.
        "task_started": any(not s.is_item for s in steps[:done]),
        "steps": _steps_payload(remaining, text, brs, items) if open_ else [],
        "completion": completion,
    }


def session_state_preview(
    *,
    study: Study,
    event_list: EventList,
    language: str,
    rng: random.Random,
    timepoint: Timepoint | None = None,
) -> dict[str, Any]:
    """The state a new session on this list would start with, and what the server would
    answer to it, for the dashboard's preview (static/dashboard/preview.js); nothing stored.

    `state` is session_state's for a session just enrolled (its plan drawn by the same
    function). The server draws a base rate when E1 arrives; the preview cannot ask it, so
    `base_rates` gives each event's answer in advance: the list's base rate, or in adaptive
    mode the one drawn (by the same function) for each possible E1, from the scale's
    minimum up (the only thing the preview skips is the swap of planned valences that
    keeps a real session half good, half bad when an E1 leaves no room). A session of
    `timepoint` asks its questionnaires before and after the task, as a real one would.
    """
    from instruments.session import study_item_plans

    events = list(Event.objects.filter(event_list=event_list).order_by("position", "id"))
    adaptive = study.br_mode == Study.BaseRateMode.ADAPTIVE
    plan, planned = plan_draw(
        [(e.pk, e.code) for e in events if e.practice],
        [(e.pk, e.code) for e in events if not e.practice],
        adaptive=adaptive,
        rng=rng,
    )
    if timepoint is not None:
        plan.update(study_item_plans(study_id=study.pk).get(timepoint.pk, {}))
    steps = session_steps(plan, study_config(study))
    items = items_state(steps=steps, remaining=steps, language=language)
    base_rates: dict[str, int | list[int]] = {}
    for e in events:
        if adaptive and not e.practice:
            base_rates[e.code] = [
                adaptive_base_rate(
                    e1=e1,
                    wanted=planned[e.pk],
                    low=study.scale_min,
                    high=study.scale_max,
                    d_min=study.adaptive_d_min,
                    d_max=study.adaptive_d_max,
                )[0]
                for e1 in range(study.scale_min, study.scale_max + 1)
            ]
        else:
            base_rates[e.code] = e.base_rate
    texts = {e.code: e.text(language) for e in events}
    state = {
        "status": Session.Status.CREATED.value,
        "language": language,
        "scale": {"min": study.scale_min, "max": study.scale_max},
        "progress": {"done": 0, "total": len(steps)},
        "config": _state_config(study, language),
        "task_started": False,
        "steps": _steps_payload(steps, lambda code: texts.get(code, code), {}, iter(items)),
        "completion": None,
    }
    return {
        "state": state,
        "base_rates": base_rates,
        "base_rate_from": phases.BASE_RATE_FROM.name,
        "completion_code": study.completion_code or "PREVIEW",
    }


def study_timepoints(*, study: Study) -> list[Timepoint]:
    """The study's timepoints in visit order (one query)."""
    return list(Timepoint.objects.filter(study=study).order_by("order"))


def timepoint_spec(timepoint: Timepoint) -> TimepointSpec:
    """A timepoint's window rule, for trials.visits."""
    return TimepointSpec(
        order=timepoint.order,
        label=timepoint.label,
        anchor=Anchor(timepoint.anchor),
        opens_after=timepoint.opens_after,
        closes_after=timepoint.closes_after,
    )


@dataclass(frozen=True)
class ParticipantVisits:
    """One participant and their visits now (trials.visits.visits_compute)."""

    participant: Participant
    visits: list[Visit]
    sessions: dict[int, Session]  # by timepoint order
    # What the visits were computed from (the anchor service re-runs trials.visits on them).
    timepoints: list[Timepoint] = field(default_factory=list)
    records: dict[int, VisitRecord] = field(default_factory=dict)

    @property
    def next(self) -> Visit | None:
        return visit_next(self.visits)

    @property
    def specs(self) -> list[TimepointSpec]:
        return [v.timepoint for v in self.visits]

    @property
    def enrolled_at(self) -> datetime:
        return self.participant.consented_at or self.participant.created_at


def study_visits(
    *,
    study: Study,
    participants: Iterable[Participant] | None = None,
    now: datetime | None = None,
) -> list[ParticipantVisits]:
    """The visits of a study's participants (default: all not withdrawn), in three queries.

    The one place the stored rows are turned into trials.visits' input: pages, APIs,
    exports and reminders read visits through here.
    """
    now = now or timezone.now()
    timepoints = list(Timepoint.objects.filter(study=study).order_by("order"))
    specs = [timepoint_spec(t) for t in timepoints]
    if participants is None:
        chosen = list(
            Participant.objects.filter(study=study, withdrawn_at__isnull=True)
            .select_related("arm")
            .order_by("id")
        )
    else:
        chosen = list(participants)
    by_participant: dict[int, dict[int, Session]] = {p.pk: {} for p in chosen}
    orders = {t.pk: t.order for t in timepoints}
    for session in Session.objects.filter(participant__in=list(by_participant)).only(
        "id", "participant_id", "timepoint_id", "token", "status", "completed_at", "started_at"
    ):
        by_participant[session.participant_id][orders[session.timepoint_id]] = session
    result = []
    for participant in chosen:
        sessions = by_participant[participant.pk]
        records = {
            order: VisitRecord(
                completed_at=s.completed_at if s.status == Session.Status.COMPLETED else None,
                abandoned=s.status == Session.Status.ABANDONED,
            )
            for order, s in sessions.items()
        }
        visits = visits_compute(
            timepoints=specs,
            records=records,
            enrolled_at=participant.consented_at or participant.created_at,
            staff_anchor_at=participant.staff_anchor_at,
            now=now,
        )
        result.append(ParticipantVisits(participant, visits, sessions, timepoints, records))
    return result


def participant_visits(
    *, participant: Participant, now: datetime | None = None
) -> ParticipantVisits:
    """One participant's visits now (see study_visits)."""
    return study_visits(study=participant.study, participants=[participant], now=now)[0]


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def visit_payload(visit: Visit) -> dict[str, Any]:
    """One visit as the participant API writes it (times ISO 8601 UTC)."""
    return {
        "timepoint": visit.timepoint.label,
        "label": visit.timepoint.label,
        "status": str(visit.status),
        "opens_at": _iso(visit.opens_at),
        "closes_at": _iso(visit.closes_at),
        "completed_at": _iso(visit.completed_at),
    }


def next_visit_payload(visit: Visit | None, *, url: str) -> dict[str, Any] | None:
    """The completion answer's `next_visit` (DESIGN.md): null when no visit is ahead."""
    if visit is None:
        return None
    return {
        "timepoint": visit.timepoint.label,
        "url": url,
        "opens_at": _iso(visit.opens_at),
        "closes_at": _iso(visit.closes_at),
    }


def event_lists_visible(*, user: Any) -> QuerySet[EventList]:
    """The event lists a researcher may see and attach: shared ones, and those of the studies
    they are a member of (imported for one, or attached to one)."""
    member_of = StudyMembership.objects.filter(user_id=user.pk).values("study_id")
    attached = StudyEventList.objects.filter(event_list=OuterRef("pk"), study_id__in=member_of)
    return EventList.objects.filter(
        Q(shared=True) | Q(owner_study_id__in=member_of) | Exists(attached)
    )


def study_visit_rows(
    *,
    study: Study,
    reminders_sent: dict[tuple[int, int], int] | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The visits export: one row per (participant not withdrawn, timepoint), DESIGN.md's
    columns, then `anchor_type`. `reminders_sent` is keyed by (participant id, timepoint id)."""
    rows = []
    sent = reminders_sent or {}
    for row in study_visits(study=study, now=now):
        ids = {t.order: t.pk for t in row.timepoints}
        for visit in row.visits:
            rows.append(
                {
                    "study": study.slug,
                    "participant": row.participant.pk,
                    "arm": row.participant.arm.code,
                    "timepoint": visit.timepoint.label,
                    "status": str(visit.status),
                    "anchor": visit.anchor_at,
                    "opens_at": visit.opens_at,
                    "closes_at": visit.closes_at,
                    "completed_at": visit.completed_at,
                    "reminders_sent": sent.get((row.participant.pk, ids[visit.timepoint.order]), 0),
                    "anchor_type": "enrolment"
                    if visit.timepoint.order == row.visits[0].timepoint.order
                    else str(visit.timepoint.anchor),
                }
            )
    return rows


# ---------------------------------------------------------------- study setup (the dashboard)


def study_started(*, study: Study) -> bool:
    """Whether any session exists: past that, the settings in LOCKED_ONCE_STARTED are fixed."""
    return Session.objects.filter(participant__study=study).exists()


def study_arm_get(*, study: Study, pk: int) -> Arm | None:
    """One arm of the study (None for another study's or a missing one)."""
    return Arm.objects.filter(study=study, pk=pk).select_related("study").first()


def study_timepoint_get(*, study: Study, pk: int) -> Timepoint | None:
    """One timepoint of the study (None for another study's or a missing one)."""
    return Timepoint.objects.filter(study=study, pk=pk).select_related("study").first()


def study_design_counts(*, study: Study) -> tuple[dict[int, int], dict[int, int]]:
    """Participants per arm and sessions per timepoint, by primary key (two queries)."""
    arms = Arm.objects.filter(study=study).annotate(n=Count("participants"))
    timepoints = Timepoint.objects.filter(study=study).annotate(n=Count("sessions"))
    return dict(arms.values_list("pk", "n")), dict(timepoints.values_list("pk", "n"))


def study_lists_attached(*, study: Study) -> list[dict[str, Any]]:
    """The study's event lists in their Latin-square order, with their event counts."""
    events = "event_list__events"
    return list(
        StudyEventList.objects.filter(study=study)
        .order_by("position")
        .values("position", "event_list_id", "event_list__name", "event_list__description")
        .annotate(
            n_events=Count(events, filter=Q(event_list__events__practice=False)),
            n_practice=Count(events, filter=Q(event_list__events__practice=True)),
            # Positive events invert the valence rule (score version 2): worth seeing.
            n_positive=Count(
                events,
                filter=Q(
                    event_list__events__practice=False, event_list__events__polarity="positive"
                ),
            ),
            br_min=Min("event_list__events__base_rate"),
            br_max=Max("event_list__events__base_rate"),
        )
    )


def study_list_links(*, study: Study) -> list[StudyEventList]:
    """The study's list attachments with their lists, in Latin-square order."""
    return list(
        StudyEventList.objects.filter(study=study).select_related("event_list").order_by("position")
    )


def study_memberships(*, study: Study) -> list[StudyMembership]:
    """The study's members with their users, by username."""
    return list(
        StudyMembership.objects.filter(study=study)
        .select_related("user")
        .order_by("user__username")
    )


def study_membership_get(*, study: Study, raw_pk: str) -> StudyMembership | None:
    """The membership a form names; None for a value that is not a row id (a tampered form)."""
    if not (raw_pk.isascii() and raw_pk.isdigit() and len(raw_pk) < 19):
        return None
    return (
        StudyMembership.objects.select_related("user").filter(study=study, pk=int(raw_pk)).first()
    )


def participant_withdrawn(*, study: Study, pk: int) -> bool:
    """Whether the study has this participant, withdrawn."""
    return Participant.objects.filter(study=study, pk=pk, withdrawn_at__isnull=False).exists()


def participant_id_blocked(*, study: Study, pk: int) -> bool:
    """Whether this participant's recruiter id is kept from enrolling again (withdrawn)."""
    return WithdrawnIdentity.objects.filter(study=study, participant_id=pk).exists()
