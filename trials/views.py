"""Participant pages: enrolment and consent, the task, the return link."""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from trials.api.participant import enrol_throttle_wait, return_url
from trials.browser import BROWSER_COOKIE, BROWSER_COOKIE_AGE, browser_key
from trials.calendar import visit_calendar
from trials.models import Study, Timepoint
from trials.qr import qr_svg
from trials.selectors import participant_visits
from trials.services.enrolment import (
    external_id_owner,
    participant_for_token,
    participant_return,
    study_enrol,
    study_language_pick,
)
from trials.services.errors import ServiceError
from trials.services.responses import session_for_token
from trials.tokens import new_token


def _keep_browser_key(request: HttpRequest, response: HttpResponse, key: str) -> HttpResponse:
    if request.COOKIES.get(BROWSER_COOKIE) != key:
        response.set_cookie(
            BROWSER_COOKIE,
            key,
            max_age=BROWSER_COOKIE_AGE,
            httponly=True,
            samesite="Lax",
            secure=settings.SESSION_COOKIE_SECURE,
        )
    return response


# Recruiters' query parameters carrying the participant's id, by recruiter.
ID_PARAMETERS = (
    ("PROLIFIC_PID", "prolific"),
    ("participant", "participant"),
    ("sona_id", "sona"),
    ("SURVEY_CODE", "sona"),
    ("id", "sona"),
    ("workerId", "mturk"),
)
KEPT_PARAMETERS = ("STUDY_ID", "SESSION_ID", "assignmentId", "hitId")


def recruiter_identity(query: Any) -> tuple[str | None, str, dict[str, str]]:
    """The external id, its source, and the recruiter's other parameters from a query."""
    params = {k: str(query[k])[:200] for k in KEPT_PARAMETERS if query.get(k)}
    for name, source in ID_PARAMETERS:
        value = (query.get(name) or "").strip()
        # Unfilled placeholders ({{%PROLIFIC_PID%}}, %SURVEY_CODE%) are not ids.
        if value and "%" not in value and "{" not in value:
            return value[:200], source, params
    return None, "", params


@require_http_methods(["GET", "POST"])
def enrol(request: HttpRequest, slug: str) -> HttpResponse:
    """The study's entry link: consent, then the first session."""
    study = get_object_or_404(Study, slug=slug)
    # PostgreSQL text cannot hold NUL: a %00 in a recruiter's link must not reach a query.
    source_query = {
        k.replace("\x00", ""): str(v).replace("\x00", "")
        for k, v in (request.POST if request.method == "POST" else request.GET).items()
    }
    language = study_language_pick(
        study=study,
        wanted=source_query.get("lang") or translation.get_language_from_request(request),
    )
    translation.activate(language)
    request.LANGUAGE_CODE = language
    external_id, source, params = recruiter_identity(source_query)
    context: dict[str, Any] = {
        "study": study,
        "title": study.title_in(language),
        "consent": study.text_for(study.consent_text, language),
        "language": language,
        "other_languages": [code for code in study.languages if code != language],
        "hidden": {
            k: v
            for k, v in source_query.items()
            if k not in {"csrfmiddlewaretoken", "consent", "lang"} and len(k) <= 40
        },
        "error": "",
    }
    if study.status != Study.Status.OPEN:
        return render(request, "trials/closed.html", context, status=403)
    key = browser_key(request.COOKIES) or new_token()
    # A known id coming back from the browser that enrolled it (or, where the study allows
    # it, a Prolific-style id) goes to its next visit, without a second consent. Any other
    # id sees the same consent page as a new one: the page tells nothing about the id.
    owner = external_id_owner(study=study, external_id=external_id, browser_key=key)
    if owner is not None and request.method == "GET":
        return _keep_browser_key(request, redirect("return", token=owner.token), key)
    if request.method == "POST":
        wait = enrol_throttle_wait(request)
        if wait:
            context["error"] = "throttled"
            response = render(request, "trials/enrol.html", context, status=429)
            response["Retry-After"] = str(wait)
            return response
        if source_query.get("consent") != "yes":
            context["error"] = "consent"
            return render(request, "trials/enrol.html", context, status=400)
        try:
            enrolment = study_enrol(
                study=study,
                external_id=external_id,
                source=source,
                params=params,
                arm_code=source_query.get("arm") or None,
                language=language,
                browser_key=key,
            )
        except ServiceError as exc:
            if exc.code == "withdrawn":  # sticky withdrawal: a polite page, not the form
                return render(request, "trials/withdrawn.html", context, status=exc.status)
            context["error"] = exc.message
            return render(request, "trials/enrol.html", context, status=exc.status)
        if not enrolment.created:
            return _keep_browser_key(
                request, redirect("return", token=enrolment.participant.token), key
            )
        return _keep_browser_key(request, redirect("task", token=enrolment.session.token), key)
    return _keep_browser_key(request, render(request, "trials/enrol.html", context), key)


def task(request: HttpRequest, token: str) -> HttpResponse:
    """The task page; the script resumes at the first unanswered step."""
    from trials.ui_strings import task_strings

    try:
        session = session_for_token(token)
    except ServiceError:
        raise Http404 from None
    participant = session.participant
    # Every visit but the last ends with the way back: the return link, its calendar file
    # and a QR code for a clinic's tablet (rendered here, shown by the script on completion).
    has_next = Timepoint.objects.filter(
        study_id=participant.study_id, order__gt=session.timepoint.order
    ).exists()
    with translation.override(session.language):
        config: dict[str, Any] = {
            "token": session.token,
            "api_base": "/api/v1",
            "language": session.language,
            "strings": task_strings(),
            "server_now": timezone.now().isoformat(),
        }
        context: dict[str, Any] = {"config": config, "session": session, "has_next": has_next}
        if has_next:
            link = return_url(request, participant)
            context.update(
                return_url=link,
                calendar_url=reverse("return-calendar", args=[participant.token]),
                qr_svg=qr_svg(link, title=_("QR code of your personal link")),
                participant=participant,
                study=participant.study,
            )
        return render(request, "trials/task.html", context)


# The return link's pages: what each state answers. A withdrawn participant's link is
# revoked and answers as any unknown link (404, no hint that it existed).
RETURN_STATUS = {"not_yet": 200, "waiting_anchor": 200, "closed": 410, "finished": 200}


def return_visit(request: HttpRequest, token: str) -> HttpResponse:
    """The return link: start or resume the open visit, else say when it opens or that it
    closed (in the participant's language; times in the browser's zone by when.js)."""
    from trials.ui_strings import visit_strings

    try:
        visit = participant_return(token=token)
    except ServiceError:
        raise Http404 from None
    if visit.state == "withdrawn":
        raise Http404
    if visit.state == "go" and visit.session is not None:
        return redirect("task", token=visit.session.token)
    participant = visit.participant
    with translation.override(participant.language):
        when = {
            "language": participant.language,
            "server_now": (visit.now or timezone.now()).isoformat(),
            "next_visit": {
                "opens_at": _iso(visit.opens_at),
                "closes_at": _iso(visit.closes_at),
            },
            "strings": visit_strings(),
        }
        return render(
            request,
            "trials/return.html",
            {
                "visit": visit,
                "when": when,
                "language": participant.language,
                "study": participant.study,
                "return_url": return_url(request, participant),
            },
            status=RETURN_STATUS[visit.state],
        )


def return_calendar(request: HttpRequest, token: str) -> HttpResponse:
    """The next visit's window as a calendar file (404 while its time is not known)."""
    try:
        participant = participant_for_token(token)
    except ServiceError:
        raise Http404 from None
    following = (
        participant_visits(participant=participant).next
        if participant.withdrawn_at is None
        else None
    )
    if following is None or following.opens_at is None:
        raise Http404
    link = return_url(request, participant)
    with translation.override(participant.language):
        body = visit_calendar(
            token=participant.token,
            order=following.timepoint.order,
            summary=_("%(study)s: your next session") % {"study": participant.study.title},
            description=_("Open your personal link during this time to take part:"),
            url=link,
            opens_at=following.opens_at,
            closes_at=following.closes_at,
            now=timezone.now(),
        )
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="next-session.ics"'
    response["Cache-Control"] = "no-store"
    return response


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
