"""Study setup without code: settings, arms and timepoints, event lists, status, members,
participant links and the task preview."""

import secrets
from typing import Any
from urllib.parse import quote

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from dashboard.access import member_study
from dashboard.forms import (
    LANGUAGE_CHOICES,
    ROLE_LABELS,
    ArmForm,
    AttachListForm,
    EventListImportForm,
    MemberForm,
    RoleForm,
    StudyForm,
    TimepointForm,
)
from dashboard.selectors import study_design
from dashboard.views.common import (
    action_write,
    apply_service_error,
    form_write,
    redirect_to,
    render_study,
)
from trials.access import Role, role_of
from trials.models import Arm, Timepoint
from trials.selectors import (
    event_lists_visible,
    session_state_preview,
    study_arm_get,
    study_design_counts,
    study_list_links,
    study_lists_attached,
    study_membership_get,
    study_memberships,
    study_started,
    study_timepoint_get,
    study_timepoints,
)
from trials.services.errors import FileRejected, ServiceError
from trials.services.study_setup import (
    LOCKED_ONCE_STARTED,
    arm_create,
    arm_delete,
    arm_update,
    event_list_import_for_study,
    membership_remove,
    membership_set,
    study_list_attach,
    study_list_detach,
    study_readiness,
    study_status_set,
    study_update,
    timepoint_create,
    timepoint_delete,
    timepoint_update,
)
from trials.ui_strings import task_strings

PROLIFIC_QUERY = (
    "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
)
SONA_QUERY = "sona_id=%SURVEY_CODE%"


# ---------------------------------------------------------------- settings and status


@login_required
@require_http_methods(["GET", "POST"])
def settings_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Every setting of the study (owner)."""
    study = member_study(request.user, slug, Role.OWNER)
    started = study_started(study=study)
    form = StudyForm(
        request.POST if request.method == "POST" else None,
        creating=False,
        initial=StudyForm.initial_for(study),
        locked=LOCKED_ONCE_STARTED if started else (),
    )
    status = 200
    if request.method == "POST":
        done = form_write(
            request,
            form,
            lambda: study_update(study=study, actor=request.user, values=form.study_values()),
            success=lambda _study: _("Settings saved."),
            then=lambda _study: redirect("dashboard:settings", slug=slug),
        )
        if done:
            return done
        status = 400
    return render_study(
        request,
        "dashboard/setup_settings.html",
        study,
        "settings",
        {"form": form, "readiness": study_readiness(study=study), "started": started},
        status=status,
    )


@login_required
@require_POST
def status_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Open, pause or close the study (owner)."""
    study = member_study(request.user, slug, Role.OWNER)
    wanted = request.POST.get("status", "")
    said = {
        "open": _("The study is open: its links accept participants."),
        "paused": _("The study is paused: new participants are turned away."),
        "closed": _("The study is closed."),
    }
    action_write(
        request,
        lambda: study_status_set(study=study, actor=request.user, status=wanted),
        success=said.get(wanted, ""),
        field="status",
    )
    target = request.POST.get("next", "")
    if target in ("overview", "settings", "design", "lists", "links"):
        return redirect(f"dashboard:{target}", slug=slug)
    return redirect("dashboard:settings", slug=slug)


# ---------------------------------------------------------------- arms and timepoints


@login_required
@require_http_methods(["GET", "POST"])
def design_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Arms and timepoints with their windows (owner edits, others read)."""
    study = member_study(request.user, slug)
    is_owner = role_of(study) == Role.OWNER
    arm_form = ArmForm(prefix="arm")
    timepoint_form = TimepointForm(
        prefix="tp",
        initial={"opens_unit": "hours", "closes_unit": "hours", "anchor": "previous"},
    )
    status = 200
    back = redirect_to("dashboard:design", slug=slug)
    if request.method == "POST":
        if not is_owner:
            member_study(request.user, slug, Role.OWNER)  # raises 403
        action = request.POST.get("action")
        if action == "add_arm":
            arm_form = ArmForm(request.POST, prefix="arm")
            done = form_write(
                request,
                arm_form,
                lambda: arm_create(
                    study=study,
                    actor=request.user,
                    code=arm_form.cleaned_data["code"],
                    name=arm_form.cleaned_data["name"],
                ),
                success=lambda arm: _("Arm '%(name)s' added.") % {"name": arm.name},
                then=back,
            )
            if done:
                return done
            status = 400
        elif action == "add_timepoint":
            timepoint_form = TimepointForm(request.POST, prefix="tp")

            def add_timepoint() -> Timepoint:
                opens, closes = timepoint_form.durations()
                return timepoint_create(
                    study=study,
                    actor=request.user,
                    label=timepoint_form.cleaned_data["label"],
                    opens_after=opens,
                    closes_after=closes,
                    anchor=timepoint_form.cleaned_data["anchor"] or "previous",
                )

            done = form_write(
                request,
                timepoint_form,
                add_timepoint,
                success=lambda tp: _("Timepoint '%(label)s' added.") % {"label": tp.label},
                then=back,
            )
            if done:
                return done
            status = 400
    design = study_design(study=study)
    arm_counts, timepoint_counts = study_design_counts(study=study)
    return render_study(
        request,
        "dashboard/setup_design.html",
        study,
        "design",
        {
            "arms": [(a, arm_counts.get(a.pk, 0)) for a in design.arms],
            "timepoints": [(t, timepoint_counts.get(t.pk, 0)) for t in design.timepoints],
            "arm_form": arm_form,
            "timepoint_form": timepoint_form,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def arm_edit_view(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    study = member_study(request.user, slug, Role.OWNER)
    arm = study_arm_get(study=study, pk=pk)
    if arm is None:
        raise Http404
    form = ArmForm(
        request.POST if request.method == "POST" else None,
        initial={"code": arm.code, "name": arm.name},
    )
    status = 200
    if request.method == "POST":
        done = form_write(
            request,
            form,
            lambda: arm_update(
                arm=arm,
                actor=request.user,
                code=form.cleaned_data["code"],
                name=form.cleaned_data["name"],
            ),
            success=lambda _arm: _("Arm saved."),
            then=redirect_to("dashboard:design", slug=slug),
        )
        if done:
            return done
        status = 400
    return render_study(
        request, "dashboard/setup_arm.html", study, "design", {"form": form, "arm": arm}, status
    )


@login_required
@require_POST
def arm_delete_view(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    study = member_study(request.user, slug, Role.OWNER)
    arm = study_arm_get(study=study, pk=pk)
    if arm is None:
        raise Http404
    action_write(
        request, lambda: arm_delete(arm=arm, actor=request.user), success=_("Arm removed.")
    )
    return redirect("dashboard:design", slug=slug)


@login_required
@require_http_methods(["GET", "POST"])
def timepoint_edit_view(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    study = member_study(request.user, slug, Role.OWNER)
    timepoint = study_timepoint_get(study=study, pk=pk)
    if timepoint is None:
        raise Http404
    form = TimepointForm(
        request.POST if request.method == "POST" else None,
        initial=TimepointForm.initial_for(
            timepoint.opens_after, timepoint.closes_after, timepoint.label, timepoint.anchor
        ),
    )
    status = 200
    if request.method == "POST":

        def save() -> Timepoint:
            opens, closes = form.durations()
            return timepoint_update(
                timepoint=timepoint,
                actor=request.user,
                label=form.cleaned_data["label"],
                opens_after=opens,
                closes_after=closes,
                anchor=form.cleaned_data["anchor"] or None,
            )

        done = form_write(
            request,
            form,
            save,
            success=lambda _tp: _("Timepoint saved."),
            then=redirect_to("dashboard:design", slug=slug),
        )
        if done:
            return done
        status = 400
    return render_study(
        request,
        "dashboard/setup_timepoint.html",
        study,
        "design",
        {"form": form, "timepoint": timepoint},
        status,
    )


@login_required
@require_POST
def timepoint_delete_view(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    study = member_study(request.user, slug, Role.OWNER)
    timepoint = study_timepoint_get(study=study, pk=pk)
    if timepoint is None:
        raise Http404
    action_write(
        request,
        lambda: timepoint_delete(timepoint=timepoint, actor=request.user),
        success=_("Timepoint removed."),
    )
    return redirect("dashboard:design", slug=slug)


# ---------------------------------------------------------------- event lists


def _import_refused(form: Any, exc: ServiceError | FileRejected, row_errors: list[Any]) -> str:
    """Put a rejected file's problems on the import form; returns the message to show."""
    if not isinstance(exc, FileRejected):
        apply_service_error(form, exc)
        return ""
    row_errors.extend(e for e in exc.errors if e.row > 0)
    for error in exc.errors:
        if error.row == 0 and error.column == "name":
            form.add_error("name", exc.message)
    if row_errors:
        form.add_error(
            "file",
            _("%(n)s problem(s) in the file: nothing was imported.") % {"n": len(row_errors)},
        )
    elif not form.errors:
        form.add_error("file", exc.message)
    return exc.message


@login_required
@require_http_methods(["GET", "POST"])
def lists_view(request: HttpRequest, slug: str) -> HttpResponse:
    """The study's event lists (Latin-square order); import from CSV; attach; detach."""
    study = member_study(request.user, slug)
    attached = study_lists_attached(study=study)
    attached_ids = {row["event_list_id"] for row in attached}
    choices = [
        (pk, name)
        for pk, name in event_lists_visible(user=request.user)
        .order_by("name")
        .values_list("pk", "name")
        if pk not in attached_ids
    ]
    import_form = EventListImportForm(prefix="imp")
    attach_form = AttachListForm(prefix="att", choices=choices)
    row_errors: list[Any] = []
    import_message = ""
    status = 200
    back = redirect_to("dashboard:lists", slug=slug)
    if request.method == "POST":
        member_study(request.user, slug, Role.OWNER)
        action = request.POST.get("action")
        status = 400
        done: HttpResponse | None = None
        if action == "import":
            import_form = EventListImportForm(request.POST, request.FILES, prefix="imp")
            said: list[str] = []

            def import_refused(form: Any, exc: ServiceError | FileRejected) -> None:
                said.append(_import_refused(form, exc, row_errors))

            done = form_write(
                request,
                import_form,
                lambda: event_list_import_for_study(
                    study=study,
                    actor=request.user,
                    name=import_form.cleaned_data["name"],
                    text=import_form.cleaned_data["csv_text"],
                    description=import_form.cleaned_data.get("description", ""),
                ),
                success=lambda made: (
                    _("List '%(name)s' imported and attached.") % {"name": made.name}
                ),
                then=back,
                refused=import_refused,
                refusals=(FileRejected, ServiceError),
            )
            import_message = said[0] if said else ""
        elif action == "attach":
            attach_form = AttachListForm(request.POST, prefix="att", choices=choices)

            def attach() -> Any:
                # Among the visible lists only: the form's choices are those.
                event_list = event_lists_visible(user=request.user).get(
                    pk=attach_form.cleaned_data["event_list"]
                )
                study_list_attach(study=study, actor=request.user, event_list=event_list)
                return event_list

            done = form_write(
                request,
                attach_form,
                attach,
                success=lambda made: _("List '%(name)s' attached.") % {"name": made.name},
                then=back,
            )
        elif action == "detach":
            action_write(
                request,
                lambda: study_list_detach(
                    study=study,
                    actor=request.user,
                    event_list_id=int(request.POST.get("event_list", "0") or 0),
                ),
                success=_("List detached."),
                refusals=(ServiceError, ValueError),
            )
            return back(None)
        if done:
            return done
    return render_study(
        request,
        "dashboard/setup_lists.html",
        study,
        "lists",
        {
            "attached": attached,
            "import_form": import_form,
            "attach_form": attach_form,
            "has_choices": bool(choices),
            "row_errors": row_errors,
            "import_message": import_message,
        },
        status=status,
    )


# ---------------------------------------------------------------- members


@login_required
@require_http_methods(["GET", "POST"])
def members_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Members and roles (owner only)."""
    study = member_study(request.user, slug, Role.OWNER)
    form = MemberForm(prefix="add")
    status = 200
    back = redirect_to("dashboard:members", slug=slug)
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "add":
            form = MemberForm(request.POST, prefix="add")
            done = form_write(
                request,
                form,
                lambda: membership_set(
                    study=study,
                    actor=request.user,
                    username=form.cleaned_data["username"],
                    role=form.cleaned_data["role"],
                ),
                success=lambda _membership: _("Member saved."),
                then=back,
            )
            if done:
                return done
            status = 400
        elif action in ("role", "remove"):
            membership = study_membership_get(
                study=study, raw_pk=str(request.POST.get("membership", ""))
            )
            if membership is None:
                raise Http404

            def change() -> None:
                if action == "remove":
                    membership_remove(study=study, actor=request.user, membership_id=membership.pk)
                    return
                role_form = RoleForm(request.POST)
                if not role_form.is_valid():
                    raise ServiceError(_("Unknown role."))
                membership_set(
                    study=study,
                    actor=request.user,
                    username=membership.user.username,
                    role=role_form.cleaned_data["role"],
                )

            action_write(request, change, success=_("Member saved."), field="role")
            return back(None)
    return render_study(
        request,
        "dashboard/setup_members.html",
        study,
        "members",
        {"memberships": study_memberships(study=study), "form": form, "role_labels": ROLE_LABELS},
        status=status,
    )


# ---------------------------------------------------------------- links and preview


def participant_links(*, base: str, arms: list[Arm]) -> list[dict[str, Any]]:
    """The links to paste into a recruiter's form: generic, Prolific, SONA, one per arm."""
    groups: list[dict[str, Any]] = []
    kinds = (
        ("generic", _("Direct link (participants give consent, then start)"), ""),
        ("prolific", _("Prolific (paste as the study URL)"), PROLIFIC_QUERY),
        ("sona", _("SONA (paste as the study URL)"), SONA_QUERY),
    )
    for kind, title, query in kinds:
        links = [
            {"label": _("Any arm (least-filled arm)"), "url": f"{base}?{query}" if query else base}
        ]
        for arm in arms:
            extra = f"arm={quote(arm.code)}"
            url = f"{base}?{query}&{extra}" if query else f"{base}?{extra}"
            links.append({"label": _("Arm: %(name)s") % {"name": arm.name}, "url": url})
        groups.append({"kind": kind, "title": title, "links": links})
    return groups


@login_required
def links_view(request: HttpRequest, slug: str) -> HttpResponse:
    study = member_study(request.user, slug)
    design = study_design(study=study)
    base = request.build_absolute_uri(reverse("enrol", args=[study.slug]))
    groups = participant_links(base=base, arms=design.arms)
    n = 0
    for group in groups:
        for link in group["links"]:
            n += 1
            link["id"] = f"link-{n}"
            link["rows"] = 1 if len(link["url"]) <= 95 else 2
    return render_study(
        request,
        "dashboard/links.html",
        study,
        "links",
        {
            "groups": groups,
            "readiness": study_readiness(study=study),
            "languages": [(c, name) for c, name in LANGUAGE_CHOICES if c in study.languages],
            "base": base,
        },
    )


_preview_rng = secrets.SystemRandom()


@login_required
def preview_view(request: HttpRequest, slug: str) -> HttpResponse:
    """The participant's screens with the study's texts and settings; nothing is sent."""
    study = member_study(request.user, slug)
    language = request.GET.get("lang") or (study.languages[0] if study.languages else "en")
    if language not in study.languages:
        language = study.languages[0] if study.languages else "en"
    lists = study_list_links(study=study)
    try:
        position = int(request.GET.get("list", "0"))
    except ValueError:
        position = 0
    chosen = next(
        (link for link in lists if link.position == position), lists[0] if lists else None
    )
    # The real task script runs in the page (static/task/task.js) with the task's own
    # settings block, against the stand-in of static/dashboard/preview.js, which answers
    # from `preview` (what the server would answer) and sends nothing.
    # The questionnaires of a session at the timepoint chosen (the first by default).
    timepoints = study_timepoints(study=study)
    try:
        order = int(request.GET.get("timepoint", ""))
    except ValueError:
        order = timepoints[0].order if timepoints else 0
    timepoint = next(
        (t for t in timepoints if t.order == order), timepoints[0] if timepoints else None
    )
    preview: dict[str, Any] | None = None
    if chosen is not None:
        preview = session_state_preview(
            study=study,
            event_list=chosen.event_list,
            language=language,
            rng=_preview_rng,
            timepoint=timepoint,
        )
    with translation.override(language):
        strings = task_strings()
    config = {
        "token": "preview",
        "api_base": "/api/v1",
        "language": language,
        "strings": strings,
        "server_now": timezone.now().isoformat(),
    }
    return render_study(
        request,
        "dashboard/preview.html",
        study,
        "preview",
        {
            "config": config,
            "preview": preview,
            "title": study.title_in(language),
            "consent": study.text_for(study.consent_text, language),
            "lists": lists,
            "chosen": chosen,
            "timepoints": timepoints,
            "timepoint": timepoint,
            "language": language,
            "languages": [(c, name) for c, name in LANGUAGE_CHOICES if c in study.languages],
        },
    )
