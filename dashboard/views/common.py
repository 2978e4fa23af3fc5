"""What every study page shares: the study with the user's role, error display, and the
POST / validate / write / redirect block of its forms."""

from collections.abc import Callable
from typing import Any, TypeVar

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from dashboard.access import permissions_of
from dashboard.forms import ROLE_LABELS, STUDY_STATUS_LABELS
from trials.access import role_of
from trials.models import Study
from trials.services.errors import ServiceError

T = TypeVar("T")


def render_study(
    request: HttpRequest,
    template: str,
    study: Study,
    active: str,
    context: dict[str, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    """Render a page of one study with its navigation and the user's permissions."""
    base = {
        "study": study,
        "role": role_of(study),
        "role_label": ROLE_LABELS.get(role_of(study), role_of(study)),
        "study_status_label": STUDY_STATUS_LABELS.get(study.status, study.status),
        "active": active,
        **permissions_of(role_of(study)),
    }
    return render(request, template, {**base, **(context or {})}, status=status)


def apply_service_error(form: forms.Form, exc: ServiceError) -> None:
    """Put a refused write's messages on the fields it names (or on the whole form)."""
    if not exc.fields:
        form.add_error(None, exc.message)
        return
    for field, problems in exc.fields.items():
        for message in problems:
            form.add_error(field if field in form.fields else None, message)


def form_write(
    request: HttpRequest,
    form: forms.Form,
    write: Callable[[], T],
    *,
    success: Callable[[T], str],
    then: Callable[[T], HttpResponse],
    refused: Callable[[forms.Form, Any], None] = apply_service_error,
    refusals: tuple[type[Exception], ...] = (ServiceError,),
) -> HttpResponse | None:
    """A bound form's submission: validate, write through a service, then post/redirect/get.

    A valid form runs `write` (the service call); its result gives the success message and the
    response (a redirect). None when the form is invalid or the service refused the write (one
    of `refusals`, put on the form by `refused`): the caller renders the form again, status 400.
    """
    if not form.is_valid():
        return None
    try:
        result = write()
    except refusals as exc:
        refused(form, exc)
        return None
    messages.success(request, success(result))
    return then(result)


def action_write(
    request: HttpRequest,
    write: Callable[[], object],
    *,
    success: str,
    field: str | None = None,
    refusals: tuple[type[Exception], ...] = (ServiceError,),
) -> None:
    """A one-button write (delete, detach, a status): its outcome becomes a message.

    A refusal shows the problems the service lists for `field`, else its message; the caller
    redirects either way.
    """
    try:
        write()
    except refusals as exc:
        fields = getattr(exc, "fields", {}) if field else {}
        fallback = [getattr(exc, "message", str(exc))]
        for problem in fields.get(field, fallback) if field else fallback:
            messages.error(request, problem)
    else:
        messages.success(request, success)


def redirect_to(name: str, **kwargs: Any) -> Callable[[object], HttpResponse]:
    """`then` for form_write: the redirect to a named URL, whatever the write returned."""
    return lambda _result: redirect(name, **kwargs)
