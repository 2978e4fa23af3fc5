"""Sessions table, participant page and withdrawal (analysts and owners)."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from dashboard.access import member_study
from dashboard.forms import (
    FLAG_LABELS,
    STATUS_LABELS,
    AnchorForm,
    SessionFilterForm,
    WithdrawForm,
)
from dashboard.models import Withdrawal
from dashboard.selectors import (
    ParticipantDetail,
    participant_detail,
    sessions_table,
    study_design,
)
from dashboard.services import participant_withdraw
from dashboard.views.common import form_write, redirect_to, render_study
from instruments.selectors import participant_instruments
from reminders.selectors import participant_contact, participant_reminders
from scoring.columns import SCORE_COLUMNS
from trials.access import Role
from trials.models import Participant, Study
from trials.qr import qr_svg
from trials.selectors import participant_id_blocked, participant_visits, participant_withdrawn
from trials.services.anchors import participant_anchor_set
from trials.services.errors import ServiceError
from trials.services.withdrawn import participant_reinstate

PAGE_SIZE = 50
SCORE_SHOWN = [c for c in SCORE_COLUMNS if c != "flags"]


@login_required
def sessions_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Filterable, paginated sessions with their status, score and flags."""
    study = member_study(request.user, slug, Role.ANALYST)
    design = study_design(study=study)
    form = SessionFilterForm(request.GET or None, arms=design.arms, timepoints=design.timepoints)
    filters = form.cleaned_data if form.is_valid() else {}
    page = Paginator(sessions_table(study=study, filters=filters), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    query = request.GET.copy()
    query.pop("page", None)
    return render_study(
        request,
        "dashboard/sessions.html",
        study,
        "sessions",
        {
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "status_labels": STATUS_LABELS,
            "flag_labels": FLAG_LABELS,
        },
        status=200 if not request.GET or form.is_valid() else 400,
    )


@login_required
def participant_view(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """One participant: each session's trials (E1, BR, E2, valence, update) and scores."""
    study = member_study(request.user, slug, Role.ANALYST)
    detail = participant_detail(study=study, pk=pk)
    if detail is None:
        raise Http404
    return _participant_page(request, study, detail, anchor_form=AnchorForm())


def _participant_page(
    request: HttpRequest,
    study: Study,
    detail: ParticipantDetail,
    *,
    anchor_form: AnchorForm,
    status: int = 200,
) -> HttpResponse:
    """The participant page, shown as it is or again with the staff-time form's errors."""
    pk = detail.participant.pk
    return render_study(
        request,
        "dashboard/participant.html",
        study,
        "sessions",
        {
            "detail": detail,
            # This page is for the roles that see identities (analyst, owner): the address too.
            "contact": participant_contact(participant_id=pk),
            "reminders": participant_reminders(participant_id=pk),
            "instruments": participant_instruments(participant_id=pk),
            "status_labels": STATUS_LABELS,
            "flag_labels": FLAG_LABELS,
            "score_columns": SCORE_SHOWN,
            "form": WithdrawForm(),
            "id_blocked": detail.participant.withdrawn_at is not None
            and participant_id_blocked(study=study, pk=pk),
            **_visits_context(request, detail.participant, anchor_form=anchor_form),
        },
        status=status,
    )


def _visits_context(request: HttpRequest, participant: Participant, **extra: Any) -> dict[str, Any]:
    """The participant page's visits: windows and statuses (trials.visits), the return link
    with its QR code, and whether a staff anchor applies."""
    row = participant_visits(participant=participant)
    link = request.build_absolute_uri(reverse("return", args=[participant.token]))
    first = row.visits[0].timepoint.order if row.visits else None
    return {
        "visits": row.visits,
        "return_url": link,
        "return_qr": qr_svg(link, title=_("QR code of the participant's return link")),
        "staff_anchored": any(
            v.timepoint.anchor == "staff" and v.timepoint.order != first for v in row.visits
        ),
        **extra,
    }


@login_required
@require_http_methods(["POST"])
def anchor_view(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """Set or correct the participant's staff anchor (refused with a message, nothing stored,
    when inconsistent; audit-logged)."""
    study = member_study(request.user, slug, Role.ANALYST)
    detail = participant_detail(study=study, pk=pk)
    if detail is None:
        raise Http404
    form = AnchorForm(request.POST)
    if form.is_valid():
        try:
            participant_anchor_set(
                study=study, participant_id=pk, at=form.moment(), actor=request.user
            )
        except ServiceError as exc:
            form.add_error("at", exc.message)
        else:
            messages.success(request, _("The staff time of P%(pk)s is saved.") % {"pk": pk})
            return redirect("dashboard:participant", slug=slug, pk=pk)
    return _participant_page(request, study, detail, anchor_form=form, status=400)


@login_required
@require_http_methods(["POST"])
def reinstate_view(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """Let a withdrawn participant's recruiter id enrol again (recorded in the audit log)."""
    study = member_study(request.user, slug, Role.ANALYST)
    if not participant_withdrawn(study=study, pk=pk):
        raise Http404
    if participant_reinstate(study=study, participant_pk=pk, actor=request.user):
        messages.success(
            request,
            _("P%(pk)s's recruiter id may enrol again, as a new participant.") % {"pk": pk},
        )
    return redirect("dashboard:participant", slug=slug, pk=pk)


@login_required
@require_http_methods(["GET", "POST"])
def withdraw_view(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """Confirm, then delete a participant's data and keep the audit record."""
    study = member_study(request.user, slug, Role.ANALYST)
    detail = participant_detail(study=study, pk=pk)
    if detail is None:
        raise Http404
    form = WithdrawForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":

        def said(withdrawal: Withdrawal) -> str:
            return _(
                "P%(pk)s is withdrawn: %(responses)s answers, %(trials)s trials, "
                "%(scores)s scores and %(ids)s recruiter id(s) were deleted. The "
                "withdrawal is recorded."
            ) % {
                "pk": pk,
                "responses": withdrawal.n_responses_deleted,
                "trials": withdrawal.n_trials_deleted,
                "scores": withdrawal.n_scores_deleted,
                "ids": withdrawal.n_identities_deleted,
            }

        done = form_write(
            request,
            form,
            lambda: participant_withdraw(
                study=study,
                participant_id=pk,
                actor=request.user,
                reason=form.cleaned_data["reason"],
            ),
            success=said,
            then=redirect_to("dashboard:participant", slug=slug, pk=pk),
            refused=lambda form, exc: form.add_error(None, exc.message),
        )
        if done:
            return done
        status = 400
    return render_study(
        request,
        "dashboard/withdraw.html",
        study,
        "sessions",
        {"detail": detail, "form": form},
        status=status,
    )
