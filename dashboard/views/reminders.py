"""The Reminders page: what was sent or failed, and the due list for recruiters' messaging."""

import csv
import io

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from audit.services import audit_record
from dashboard.access import member_study
from dashboard.views.common import render_study
from reminders.models import Reminder
from reminders.selectors import (
    DUE_COLUMNS,
    study_due_visits,
    study_failed_reminders,
    study_reminder_counts,
)
from trials.access import Role
from trials.exports import neutralise


@login_required
def reminders_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Counts by status, the failed reminders, and how many participants are due now."""
    # The due list carries recruiter ids: the roles that see identities (analyst, owner).
    study = member_study(request.user, slug, Role.ANALYST)
    counts = study_reminder_counts(study=study)
    return render_study(
        request,
        "dashboard/reminders.html",
        study,
        "reminders",
        {
            "counts": [(status, counts.get(status, 0)) for status in Reminder.Status.values],
            "failed": study_failed_reminders(study=study),
            "n_due": len(study_due_visits(study=study)),
        },
    )


@login_required
def due_csv_view(request: HttpRequest, slug: str) -> HttpResponse:
    """The visits open now, with recruiter id and return link (CSV, for Prolific/SONA)."""
    study = member_study(request.user, slug, Role.ANALYST)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(DUE_COLUMNS)
    due = study_due_visits(study=study)
    for d in due:
        writer.writerow(
            [
                f"P{d.participant_id}",
                d.source,
                neutralise(d.external_id),
                neutralise(d.timepoint),
                d.opens_at.isoformat() if d.opens_at else "",
                d.closes_at.isoformat() if d.closes_at else "",
                d.return_url,
            ]
        )
    audit_record(
        actor=request.user, action="reminders.due_list", study=study.slug, detail={"rows": len(due)}
    )
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-due.csv"'
    response["Cache-Control"] = "no-store"
    return response
