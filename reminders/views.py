"""The stop link of the reminder e-mails: /r/<participant-token>/stop/."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from reminders.models import Contact
from reminders.services import contact_delete, participant_for_link
from trials.services.errors import ServiceError


# Mail clients send the one-click stop (RFC 8058) as a POST without any cookie or CSRF
# token; the unguessable token in the URL is the credential, as for the return link.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def stop(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks for confirmation (mail scanners fetch links); POST stops the reminders."""
    try:
        participant = participant_for_link(token)
    except ServiceError:
        raise Http404 from None
    with translation.override(participant.language):
        if request.method == "POST":
            contact_delete(participant=participant)
            context = {"stopped": True, "language": participant.language}
        else:
            context = {
                "stopped": False,
                "has_address": Contact.objects.filter(participant=participant).exists(),
                "language": participant.language,
            }
        response = render(request, "reminders/stop.html", context)
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex"
    return response
