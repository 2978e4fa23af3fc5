"""The reminder e-mails, in the participant's language, with the return and stop links."""

from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import dateformat, translation
from django.utils.translation import gettext as _

from reminders.models import Contact, Reminder

# Day and month names come from the active language (dateformat under translation.override).
WHEN_FORMAT = {"en": "l j F Y, H:i", "fr": "l j F Y, H:i"}


def participant_zone(contact: Contact) -> ZoneInfo:
    """The zone the participant's browser reported, or UTC."""
    try:
        return ZoneInfo(contact.time_zone) if contact.time_zone else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def when_text(moment: datetime, *, zone: ZoneInfo, language: str) -> str:
    """A time as the participant reads it: their zone, their language, the zone's name."""
    local = moment.astimezone(zone)
    return f"{dateformat.format(local, WHEN_FORMAT.get(language, WHEN_FORMAT['en']))} ({zone.key})"


def return_url(token: str) -> str:
    return f"{settings.SITE_URL.rstrip('/')}/r/{token}/"


def stop_url(token: str) -> str:
    return f"{settings.SITE_URL.rstrip('/')}/r/{token}/stop/"


def reminder_message(*, reminder: Reminder, contact: Contact) -> EmailMessage:
    """The e-mail of one reminder (not sent here)."""
    participant = reminder.participant
    study = participant.study
    language = participant.language if participant.language in WHEN_FORMAT else "en"
    zone = participant_zone(contact)
    with translation.override(language):
        values = {
            "title": study.title,
            "opens": when_text(reminder.opens_at, zone=zone, language=language),
            "closes": when_text(reminder.closes_at, zone=zone, language=language)
            if reminder.closes_at
            else "",
            "link": return_url(participant.token),
            "stop": stop_url(participant.token),
        }
        if reminder.kind == Reminder.Kind.CLOSING:
            subject = _("Last hours for your next session of “%(title)s”") % values
            window = _("Your next session closes on %(closes)s.") % values
        else:
            subject = _("Your next session of “%(title)s” is open") % values
            window = (
                _("Your next session is open from %(opens)s until %(closes)s.") % values
                if reminder.closes_at
                else _("Your next session is open from %(opens)s.") % values
            )
        body = "\n\n".join(
            [
                _("Hello,"),
                window,
                _("To take part, open your personal link:\n%(link)s") % values,
                _("Thank you for taking part in “%(title)s”.") % values,
                _(
                    "You get this message because you asked for reminders. "
                    "To get no more of them: %(stop)s"
                )
                % values,
            ]
        )
    host = urlsplit(settings.SITE_URL).hostname or "localhost"
    return EmailMessage(
        subject=subject,
        body=body + "\n",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[contact.email],
        headers={
            # RFC 8058 one-click stop: mail clients POST "List-Unsubscribe=One-Click" there.
            "List-Unsubscribe": f"<{values['stop']}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Auto-Submitted": "auto-generated",
            # One id per reminder: should a message ever be handed over twice, receiving
            # servers and clients that deduplicate by Message-ID show it once.
            "Message-ID": f"<reminder-{reminder.pk}@{host}>",
            "Content-Language": language,
        },
    )
