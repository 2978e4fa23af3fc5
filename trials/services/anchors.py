"""The staff anchor of a participant's `staff`-anchored visits (the infusion time)."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from trials.models import Participant, Study, Timepoint
from trials.services.errors import Conflict, InvalidInput, NotFound
from trials.visits import anchor_problem


def participant_anchor_set(
    *, study: Study, participant_id: int, at: datetime, actor: object
) -> Participant:
    """Set or correct a participant's staff anchor; refused (nothing stored) when it would
    make a window inconsistent (trials.visits.anchor_problem). Audit-logged."""
    from trials.selectors import participant_visits

    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(
            "The anchor time needs its time zone.",
            fields={"at": ["Give the offset, e.g. 2026-12-02T14:05:00+01:00, or Z for UTC."]},
        )
    with transaction.atomic():
        # Serialises corrections of one participant, and the check with the write.
        participant = (
            Participant.objects.select_for_update()
            .select_related("study", "arm")
            .filter(study=study, pk=participant_id)
            .first()
        )
        if participant is None:
            raise NotFound("No such participant in this study.")
        if participant.withdrawn_at is not None:
            raise Conflict("This participant has withdrawn.", code="withdrawn")
        staff = Timepoint.objects.filter(study=study, anchor=Timepoint.Anchor.STAFF)
        first = Timepoint.objects.filter(study=study).order_by("order").first()
        if first is not None:
            staff = staff.exclude(pk=first.pk)
        if not staff.exists():
            message = "No visit of this study counts from a staff time."
            raise InvalidInput(message, fields={"at": [message]})
        now = timezone.now()
        row = participant_visits(participant=participant, now=now)
        problem = anchor_problem(
            at=at,
            timepoints=row.specs,
            records=row.records,
            enrolled_at=row.enrolled_at,
            staff_anchor_at=participant.staff_anchor_at,
            now=now,
        )
        if problem is not None:
            raise InvalidInput(problem, fields={"at": [problem]})
        before = participant.staff_anchor_at
        Participant.objects.filter(pk=participant.pk).update(staff_anchor_at=at)
        audit_record(
            actor=actor,
            action="participant.anchor",
            study=study.slug,
            target=f"P{participant.pk}",
            detail={
                "from": before.isoformat() if before is not None else None,
                "to": at.isoformat(),
            },
        )
    participant.staff_anchor_at = at
    return participant
