"""Reads of the reminders app: per participant, per visit, and the due list for recruiters."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count
from django.utils import timezone

from reminders.messages import return_url
from reminders.models import Contact, Reminder
from trials.models import ParticipantIdentity, Study
from trials.selectors import study_visits


def participant_reminders(*, participant_id: int) -> list[Reminder]:
    """A participant's reminders, by visit then kind (one query)."""
    return list(
        Reminder.objects.filter(participant_id=participant_id)
        .select_related("timepoint")
        .order_by("timepoint__order", "kind")
    )


def participant_contact(*, participant_id: int) -> Contact | None:
    """The participant's address, for the roles that may see identities only."""
    return Contact.objects.filter(participant_id=participant_id).first()


def reminders_sent_by_visit(*, participant_ids: Iterable[int]) -> dict[tuple[int, int], int]:
    """How many reminders were sent per (participant id, timepoint id): the visits export."""
    rows = (
        Reminder.objects.filter(participant_id__in=list(participant_ids), status="sent")
        .values("participant_id", "timepoint_id")
        .annotate(n=Count("id"))
    )
    return {(r["participant_id"], r["timepoint_id"]): r["n"] for r in rows}


def study_reminder_counts(*, study: Study) -> dict[str, int]:
    """How many of the study's reminders are in each status."""
    rows = (
        Reminder.objects.filter(participant__study=study)
        .values("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {r["status"]: r["n"] for r in rows}


def study_failed_reminders(*, study: Study, limit: int = 200) -> list[Reminder]:
    return list(
        Reminder.objects.filter(participant__study=study, status=Reminder.Status.FAILED)
        .select_related("timepoint")
        .order_by("-claimed_at", "-pk")[:limit]
    )


@dataclass(frozen=True)
class DueVisit:
    """One participant's open visit, for the recruiter's own messaging."""

    participant_id: int
    source: str
    external_id: str
    timepoint: str
    opens_at: datetime | None
    closes_at: datetime | None
    return_url: str


DUE_COLUMNS = (
    "participant",
    "recruiter",
    "external_id",
    "timepoint",
    "opens_at",
    "closes_at",
    "return_url",
)


def study_due_visits(*, study: Study, now: datetime | None = None) -> list[DueVisit]:
    """Every visit open now and not done, with the recruiter id and the return link."""
    now = now or timezone.now()
    entries = study_visits(study=study, now=now)
    identities = {
        i.participant_id: i
        for i in ParticipantIdentity.objects.filter(
            participant_id__in=[e.participant.pk for e in entries]
        )
    }
    due = []
    for entry in entries:
        first = min((v.timepoint.order for v in entry.visits), default=0)
        identity = identities.get(entry.participant.pk)
        for visit in entry.visits:
            if visit.status != "open" or visit.timepoint.order == first:
                continue
            due.append(
                DueVisit(
                    participant_id=entry.participant.pk,
                    source=identity.source if identity else "",
                    external_id=identity.external_id if identity else "",
                    timepoint=visit.timepoint.label,
                    opens_at=visit.opens_at,
                    closes_at=visit.closes_at,
                    return_url=return_url(entry.participant.token),
                )
            )
    return due
