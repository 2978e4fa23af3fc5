"""What every study page shares: the study with the user's role, and error display."""

from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from dashboard.access import permissions_of
from dashboard.forms import ROLE_LABELS, STUDY_STATUS_LABELS
from trials.access import role_of
from trials.models import Study
from trials.services.errors import ServiceError


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
    for field, messages in exc.fields.items():
        for message in messages:
            form.add_error(field if field in form.fields else None, message)
