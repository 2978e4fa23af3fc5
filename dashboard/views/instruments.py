"""Instruments of a study (attach, import a file) and clinician ratings (enter, edit)."""

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _, gettext_lazy
from django.views.decorators.http import require_http_methods

from dashboard.access import member_study
from dashboard.views.common import apply_service_error, form_write, redirect_to, render_study
from instruments.definition import InstrumentInvalid
from instruments.selectors import (
    instrument_by_code,
    instrument_given_elsewhere,
    instruments_all,
    rating_page,
    study_instrument_links,
    study_instruments,
)
from instruments.services import (
    IMPORT_MAX_BYTES,
    instrument_attach,
    instrument_detach,
    instrument_import,
    rating_save,
)
from trials.access import Role, role_at_least, role_of
from trials.services.errors import NotFound, ServiceError


class AttachForm(forms.Form):
    timepoint = forms.ChoiceField(label=gettext_lazy("Timepoint"))
    instrument = forms.ChoiceField(label=gettext_lazy("Instrument"))
    position = forms.ChoiceField(
        label=gettext_lazy("When (self-report)"),
        choices=[
            ("before", gettext_lazy("before the task")),
            ("after", gettext_lazy("after the task")),
        ],
        initial="after",
    )

    def __init__(
        self, *args: Any, timepoints: list[Any], instruments: list[Any], **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.fields["timepoint"].choices = [(str(t.pk), t.label) for t in timepoints]  # type: ignore[attr-defined]
        self.fields["instrument"].choices = [  # type: ignore[attr-defined]
            (str(i.pk), f"{i.code} ({i.get_kind_display()})") for i in instruments
        ]


class UploadForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("Instrument file (JSON, docs/instruments.md)"))


@login_required
@require_http_methods(["GET", "POST"])
def instruments_view(request: HttpRequest, slug: str) -> HttpResponse:
    """The study's instruments per timepoint; owners attach, detach and import files."""
    study = member_study(request.user, slug, Role.VIEWER)
    can_edit = role_at_least(role_of(study), Role.OWNER)
    timepoints = list(study.timepoints.order_by("order"))
    available = instruments_all()
    attach = AttachForm(timepoints=timepoints, instruments=available)
    upload = UploadForm()
    upload_errors: list[dict[str, str]] = []
    status = 200
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied("Only the study's owners change its instruments.")
        action = request.POST.get("action")
        if action == "attach":
            attach = AttachForm(request.POST, timepoints=timepoints, instruments=available)
            if attach.is_valid():
                timepoint = next(
                    t for t in timepoints if str(t.pk) == attach.cleaned_data["timepoint"]
                )
                instrument = next(
                    i for i in available if str(i.pk) == attach.cleaned_data["instrument"]
                )
                try:
                    instrument_attach(
                        study=study,
                        timepoint=timepoint,
                        instrument=instrument,
                        position=attach.cleaned_data["position"],
                    )
                except ServiceError as exc:
                    apply_service_error(attach, exc)
                else:
                    messages.success(
                        request,
                        _("%(code)s is given at %(tp)s.")
                        % {"code": instrument.code, "tp": timepoint.label},
                    )
                    return redirect("dashboard:instruments", slug=slug)
            status = 400
        elif action == "detach":
            raw = str(request.POST.get("link") or "")
            if not (raw.isascii() and raw.isdigit() and len(raw) < 19):
                raise Http404
            try:
                instrument_detach(study=study, link_id=int(raw))
            except NotFound:
                raise Http404 from None
            except ServiceError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, _("Removed."))
            return redirect("dashboard:instruments", slug=slug)
        elif action == "upload":
            upload = UploadForm(request.POST, request.FILES)
            if upload.is_valid():
                data = upload.cleaned_data["file"].read(IMPORT_MAX_BYTES + 1)
                code = _code_of(data)
                existing = instrument_by_code(code=code)
                if existing is not None and instrument_given_elsewhere(
                    instrument=existing, user=request.user
                ):
                    upload.add_error(
                        "file",
                        _(
                            "%(code)s is used by a study you do not own: import it under "
                            "another code."
                        )
                        % {"code": code},
                    )
                else:
                    try:
                        instrument, created = instrument_import(data=data, actor=request.user)
                    except InstrumentInvalid as exc:
                        upload_errors = [e.as_dict() for e in exc.errors]
                        upload.add_error(
                            "file",
                            _("%(n)s error(s); nothing was stored.") % {"n": len(exc.errors)},
                        )
                    else:
                        messages.success(
                            request,
                            (_("Added %(code)s.") if created else _("Updated %(code)s."))
                            % {"code": instrument.code},
                        )
                        return redirect("dashboard:instruments", slug=slug)
            status = 400
        else:
            status = 400
    return render_study(
        request,
        "dashboard/instruments.html",
        study,
        "instruments",
        {
            "timepoints": study_instruments(study=study),
            "links": study_instrument_links(study=study),
            "available": available,
            "attach": attach,
            "upload": upload,
            "upload_errors": upload_errors,
        },
        status=status,
    )


def _code_of(data: bytes) -> str | None:
    import json

    try:
        parsed = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    code = parsed.get("code") if isinstance(parsed, dict) else None
    return code if isinstance(code, str) else None


def rating_form_class(definition: Any, language: str) -> type[forms.Form]:
    """A form with one choice per item (its options) and the rating time."""
    fields: dict[str, forms.Field] = {}
    for item in definition.items:
        label = item.text.get(language) or item.text.get("en") or item.code
        fields[item.code] = forms.TypedChoiceField(
            label=f"{item.code}: {label}",
            coerce=int,
            choices=[("", "–")]
            + [
                (o.value, f"{o.value} {o.label.get(language) or o.label.get('en', '')}".strip())
                for o in item.options
            ],
            required=item.required,
        )
    fields["rated_at"] = forms.DateTimeField(
        label=gettext_lazy("Rated at (UTC, YYYY-MM-DD HH:MM)"),
        required=False,
        help_text=gettext_lazy("Blank: now."),
    )
    return type("RatingForm", (forms.Form,), fields)


def _rating_refused(form: forms.Form, exc: ServiceError) -> None:
    """A refused rating: each item's problem on its field ("items.<code>" in the service)."""
    for field, problems in exc.fields.items():
        name = field.removeprefix("items.")
        for problem in problems:
            form.add_error(name if name in form.fields else None, problem)
    if not exc.fields:
        form.add_error(None, exc.message)


@login_required
@require_http_methods(["GET", "POST"])
def rating_view(request: HttpRequest, slug: str, pk: int, session: int, code: str) -> HttpResponse:
    """Enter or edit a clinician-rated instrument for one participant's visit (analyst+)."""
    study = member_study(request.user, slug, Role.ANALYST)
    page = rating_page(study=study, participant_pk=pk, session_pk=session, code=code)
    if page is None:
        raise Http404
    visit, link, rating = page.visit, page.link, page.rating
    definition = link.instrument.parsed()
    form_class = rating_form_class(definition, request.LANGUAGE_CODE)
    status = 200
    if request.method == "POST":
        form = form_class(request.POST)

        def save() -> tuple[Any, bool]:
            data = dict(form.cleaned_data)
            rated_at = data.pop("rated_at")
            return rating_save(
                study=study,
                participant=pk,
                timepoint=visit.timepoint.label,
                instrument=code,
                items={k: v for k, v in data.items() if v is not None},
                rated_at=rated_at.isoformat() if rated_at else None,
                actor=request.user,
            )

        done = form_write(
            request,
            form,
            save,
            success=lambda saved: (
                _("Rating saved.")
                if saved[1]
                else _("Rating updated; the previous values are in the audit log.")
            ),
            then=redirect_to("dashboard:participant", slug=slug, pk=pk),
            refused=_rating_refused,
        )
        if done:
            return done
        status = 400
    else:
        initial: dict[str, Any] = dict(page.answers)
        if rating is not None:
            initial["rated_at"] = rating.rated_at
        form = form_class(initial=initial)
    return render_study(
        request,
        "dashboard/rating.html",
        study,
        "sessions",
        {
            "form": form,
            "visit": visit,
            "participant_pk": pk,
            "instrument": link.instrument,
            "definition": definition,
            "rating": rating,
            "score": page.score,
        },
        status=status,
    )
