"""Template filters of the reminders: whether a participant is offered the e-mail field."""

from django import template

from reminders.models import Contact
from reminders.services import email_allowed
from trials.models import Participant

register = template.Library()


@register.filter
def reminders_state(participant: Participant) -> str:
    """'offer' (the field), 'subscribed' (an address is held) or '' (not offered)."""
    if not email_allowed(participant):
        return ""
    return "subscribed" if Contact.objects.filter(participant=participant).exists() else "offer"
