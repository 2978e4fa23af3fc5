"""The study list and the creation of a study."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from dashboard.forms import ROLE_LABELS, STUDY_STATUS_LABELS, StudyForm
from dashboard.selectors import study_list
from dashboard.views.common import form_write
from trials.services.study_setup import study_create


@login_required
def study_list_view(request: HttpRequest) -> HttpResponse:
    """The studies the user is a member of, with their counts (6 queries with the session)."""
    rows = study_list(user=request.user)
    return render(
        request,
        "dashboard/study_list.html",
        {"rows": rows, "role_labels": ROLE_LABELS, "status_labels": STUDY_STATUS_LABELS},
    )


@login_required
@require_http_methods(["GET", "POST"])
def study_create_view(request: HttpRequest) -> HttpResponse:
    form = StudyForm(
        request.POST if request.method == "POST" else None, initial=StudyForm.initial_new()
    )
    if request.method == "POST":
        done = form_write(
            request,
            form,
            lambda: study_create(
                user=request.user, slug=form.cleaned_data["slug"], values=form.study_values()
            ),
            success=lambda _study: _(
                "Study created. It is paused: add its arms, timepoints and event "
                "lists, then open it."
            ),
            then=lambda study: redirect("dashboard:design", slug=study.slug),
        )
        if done:
            return done
        return render(
            request, "dashboard/study_form.html", {"form": form, "creating": True}, status=400
        )
    return render(request, "dashboard/study_form.html", {"form": form, "creating": True})
