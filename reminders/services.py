"""Reminders: the participant's address (opt in, stop) and each reminder sent exactly once.

Delivery is AT MOST ONCE. A reminder's row is its claim (a conditional UPDATE whose row
count says who won), in three steps:
- pending -> claimed: a worker takes it and opens the SMTP connection (connect, TLS, login).
  Nothing of the message has left yet, so a claim that went stale (its worker died) is
  safe to take again, and an SMTP server that is down puts it back to pending with a
  doubling delay (retry_delay), until REMINDER_MAX_ATTEMPTS, then failed.
- claimed -> sending: just before the message is handed over (MAIL, RCPT, DATA).
- sending -> sent once the server accepted it.
A worker killed, or a connection lost, while the row says `sending` leaves it unknown
whether the server took the message. Sending again could deliver it twice; not sending
could lose it. We choose not to send again: a duplicate reminder is a nuisance that costs
participants' trust, a lost one is covered by the other reminder of the visit, by the
return link the participant already has and by the dashboard, where such a reminder shows
as failed ("interrupted while being handed over") for staff to follow up. The hand-over
lasts milliseconds, so in practice it is the SMTP server being down (safe to retry) that
happens, not this. Each message also carries one Message-ID per reminder.
"""

import logging
import os
import smtplib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import get_connection
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from reminders.messages import reminder_message
from reminders.models import Contact, Reminder
from reminders.planning import reminder_kind_now, reminders_due, retry_delay
from trials.models import Participant, ParticipantIdentity, Study, Timepoint
from trials.selectors import participant_visits, study_visits
from trials.services.enrolment import participant_for_token
from trials.services.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)

# Recruiters whose participants must not be asked for an e-mail address (their terms: the
# recruiter relays messages itself). Their studies get the due list (dashboard) instead.
EMAIL_FORBIDDEN_SOURCES = frozenset({"prolific", "sona", "mturk"})
INTERRUPTED = (
    "interrupted while being handed to the mail server: not sent again, so that it cannot "
    "arrive twice"
)


# ---------------------------------------------------------------- the participant's address


def participant_for_link(token: str) -> Participant:
    """The participant of a return-link token; a withdrawn one's link is revoked and, like
    a malformed or unknown token, answers NotFound (no hint that it existed)."""
    participant = participant_for_token(token)
    if participant.withdrawn_at is not None:
        raise NotFound("Unknown link.")
    return participant


def email_allowed(participant: Participant) -> bool:
    """Whether this participant may be offered reminders by e-mail."""
    if not participant.study.collect_email or participant.withdrawn_at is not None:
        return False
    return not ParticipantIdentity.objects.filter(
        participant=participant, source__in=EMAIL_FORBIDDEN_SOURCES
    ).exists()


def _clean_email(raw: object) -> str:
    email = raw.strip() if isinstance(raw, str) else ""
    problem = None
    if not email:
        problem = _("Enter an e-mail address.")
    elif len(email) > 254:
        problem = _("An e-mail address has at most 254 characters.")
    else:
        try:
            validate_email(email)
        except ValidationError:
            problem = _("This is not an e-mail address (e.g. name@example.org).")
    if problem:
        raise InvalidInput(problem, fields={"email": [problem]})
    local, _at, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"


def _clean_zone(raw: object) -> str:
    zone = raw.strip() if isinstance(raw, str) else ""
    if not zone:
        return ""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        message = _("Unknown time zone.")
        raise InvalidInput(message, fields={"time_zone": [message]}) from None
    return zone


@transaction.atomic
def contact_set(*, token: str, email: object, time_zone: object = "") -> Contact:
    """Store (or replace) a participant's address for reminders, with the consent time."""
    participant = participant_for_link(token)
    Participant.objects.select_for_update().filter(pk=participant.pk).first()
    if not email_allowed(participant):
        raise Conflict(
            _("This study does not collect e-mail addresses."), code="email_not_collected"
        )
    clean = _clean_email(email)
    zone = _clean_zone(time_zone)
    contact, _created = Contact.objects.update_or_create(
        participant=participant,
        defaults={
            "study": participant.study,
            "email": clean,
            "time_zone": zone,
            "consented_at": timezone.now(),
        },
    )
    return contact


@transaction.atomic
def contact_delete(*, participant: Participant) -> int:
    """Forget the participant's address and cancel what was not sent; how many were deleted."""
    deleted, _detail = Contact.objects.filter(participant=participant).delete()
    Reminder.objects.filter(
        participant=participant, status__in=[Reminder.Status.PENDING, Reminder.Status.CLAIMED]
    ).update(status=Reminder.Status.CANCELLED, last_error="stopped")
    return int(deleted)


def contact_stop(*, token: str) -> int:
    """The stop link and DELETE .../contact: no more reminders for this participant."""
    return contact_delete(participant=participant_for_link(token))


# ---------------------------------------------------------------- sending one reminder


@dataclass(frozen=True)
class Outcome:
    """What became of one attempt: sent, retry in `retry_in` s, failed, cancelled or skipped."""

    result: str
    retry_in: int = 0


def _stale_before(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.REMINDER_CLAIM_STALE_SECONDS)


def reminder_claim(*, reminder_id: int, now: datetime) -> bool:
    """Take a reminder for sending; True for exactly one caller however many try."""
    claimable = Q(status=Reminder.Status.PENDING) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    # A claim whose worker died before the hand-over: nothing was sent, take it again.
    claimable |= Q(status=Reminder.Status.CLAIMED, claimed_at__lt=_stale_before(now))
    return (
        Reminder.objects.filter(claimable, pk=reminder_id).update(
            status=Reminder.Status.CLAIMED, claimed_at=now, attempts=F("attempts") + 1
        )
        == 1
    )


def _still_due(reminder: Reminder, now: datetime) -> str:
    """Why the reminder should not go any more ('' when it should), from the visit now.

    The window is read again (staff may have corrected the anchor since it fell due) and
    copied to the row, so that the message and the dashboard say what holds now.
    """
    participant = reminder.participant
    if participant.withdrawn_at is not None:
        return "withdrawn"
    if not Contact.objects.filter(participant=participant).exists():
        return "no address"
    visits = participant_visits(participant=participant, now=now).visits
    visit = next((v for v in visits if v.timepoint.order == reminder.timepoint.order), None)
    kind = (
        reminder_kind_now(
            visit,
            now=now,
            closing_hours=participant.study.reminder_closing_hours,
            first_order=min(v.timepoint.order for v in visits),
        )
        if visit is not None
        else None
    )
    if visit is None or kind is None:
        return f"visit {visit.status if visit else 'gone'}"
    if kind != reminder.kind:
        return f"the {kind} reminder is due instead"
    assert visit.opens_at is not None
    reminder.opens_at, reminder.closes_at = visit.opens_at, visit.closes_at
    Reminder.objects.filter(pk=reminder.pk).update(
        opens_at=visit.opens_at, closes_at=visit.closes_at
    )
    return ""


def _release(
    reminder: Reminder, claimed_at: datetime, error: str, *, permanent: bool = False
) -> Outcome:
    """The attempt failed before anything was handed over: retry later, or give up."""
    now = timezone.now()
    mine = Reminder.objects.filter(
        pk=reminder.pk, status=Reminder.Status.CLAIMED, claimed_at=claimed_at
    )
    if permanent or reminder.attempts >= settings.REMINDER_MAX_ATTEMPTS:
        mine.update(status=Reminder.Status.FAILED, last_error=error[:2000])
        log.warning("reminder %s failed (attempt %s): %s", reminder.pk, reminder.attempts, error)
        return Outcome("failed")
    delay = retry_delay(
        attempts=reminder.attempts,
        base_seconds=settings.REMINDER_RETRY_BASE_SECONDS,
        max_seconds=settings.REMINDER_RETRY_MAX_SECONDS,
    )
    mine.update(
        status=Reminder.Status.PENDING,
        last_error=error[:2000],
        next_attempt_at=now + timedelta(seconds=delay),
        queued_at=now + timedelta(seconds=delay),
    )
    log.info(
        "reminder %s: attempt %s failed (%s), retry in %s s",
        reminder.pk,
        reminder.attempts,
        error,
        delay,
    )
    return Outcome("retry", delay)


def _hold_for_tests(stage: str, reminder_id: int) -> None:
    """Test hook: BW_TEST_REMINDER_HOLD=<stage>:<seconds> sleeps at that stage of a send.

    tests/reminders/test_delivery.py sets it on one worker so that it can SIGKILL the
    worker mid-send. Never set it in a deployment.
    """
    hold = os.environ.get("BW_TEST_REMINDER_HOLD", "")
    if hold.startswith(f"{stage}:"):
        log.warning("BW_TEST_REMINDER_HOLD: holding reminder %s at %s", reminder_id, stage)
        time.sleep(float(hold.split(":", 1)[1]))


def reminder_send(*, reminder_id: int) -> Outcome:
    """Send one reminder if this caller wins its claim (see the module's docstring)."""
    now = timezone.now()
    if not reminder_claim(reminder_id=reminder_id, now=now):
        return Outcome("skipped")
    reminder = Reminder.objects.select_related(
        "participant__study", "participant__contact", "timepoint"
    ).get(pk=reminder_id)
    claimed_at = reminder.claimed_at
    assert claimed_at is not None
    why_not = _still_due(reminder, now)
    if why_not:
        Reminder.objects.filter(
            pk=reminder_id, status=Reminder.Status.CLAIMED, claimed_at=claimed_at
        ).update(status=Reminder.Status.CANCELLED, last_error=why_not)
        return Outcome("cancelled")
    message = reminder_message(reminder=reminder, contact=reminder.participant.contact)
    _hold_for_tests("claimed", reminder_id)
    connection = get_connection(fail_silently=False)
    try:
        connection.open()
    except (OSError, smtplib.SMTPException) as exc:
        return _release(reminder, claimed_at, f"{type(exc).__name__}: {exc}")
    try:
        handing_over = Reminder.objects.filter(
            pk=reminder_id, status=Reminder.Status.CLAIMED, claimed_at=claimed_at
        ).update(status=Reminder.Status.SENDING)
        if handing_over != 1:
            return Outcome("skipped")  # taken over as stale: the other attempt sends it
        _hold_for_tests("sending", reminder_id)
        try:
            connection.send_messages([message])
        except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused) as exc:
            # The server answered "no": it did not take the message, so another try is
            # safe; a 5xx answer (no such mailbox) will not change, so it is not retried.
            Reminder.objects.filter(pk=reminder_id, status=Reminder.Status.SENDING).update(
                status=Reminder.Status.CLAIMED
            )
            codes = (
                [code for code, _text in exc.recipients.values()]
                if isinstance(exc, smtplib.SMTPRecipientsRefused)
                else [exc.smtp_code]
            )
            return _release(
                reminder,
                claimed_at,
                f"refused by the mail server: {exc}",
                permanent=all(500 <= code < 600 for code in codes),
            )
        except (OSError, smtplib.SMTPException) as exc:
            Reminder.objects.filter(pk=reminder_id, status=Reminder.Status.SENDING).update(
                status=Reminder.Status.FAILED, last_error=f"{INTERRUPTED} ({exc})"[:2000]
            )
            return Outcome("failed")
    finally:
        connection.close()
    Reminder.objects.filter(pk=reminder_id, status=Reminder.Status.SENDING).update(
        status=Reminder.Status.SENT, sent_at=timezone.now(), last_error=""
    )
    return Outcome("sent")


# ---------------------------------------------------------------- the sweep (beat)


def reminders_plan(*, now: datetime) -> int:
    """Insert the reminders that fell due; the unique constraint keeps each to one row.

    Two beat processes may plan at once: ON CONFLICT DO NOTHING (ignore_conflicts) makes
    the second insert of a (participant, timepoint, kind) a no-op. Only participants with an
    address, in studies that collect them and are not closed, are read.
    """
    rows = []
    studies = Study.objects.filter(collect_email=True).exclude(status=Study.Status.CLOSED)
    for study in studies:
        participants = Participant.objects.filter(
            study=study, withdrawn_at__isnull=True, contact__isnull=False
        ).order_by("id")
        if not participants.exists():
            continue
        timepoint_ids = dict(Timepoint.objects.filter(study=study).values_list("order", "pk"))
        for entry in study_visits(study=study, participants=participants, now=now):
            for due in reminders_due(
                entry.visits, now=now, closing_hours=study.reminder_closing_hours
            ):
                rows.append(
                    Reminder(
                        participant=entry.participant,
                        timepoint_id=timepoint_ids[due.order],
                        kind=due.kind,
                        opens_at=due.opens_at,
                        closes_at=due.closes_at,
                        next_attempt_at=now,
                    )
                )
    Reminder.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    return len(rows)


def reminders_fail_interrupted(*, now: datetime) -> int:
    """Mark failed the reminders whose hand-over was interrupted (see the module docstring)."""
    return Reminder.objects.filter(
        status=Reminder.Status.SENDING, claimed_at__lt=_stale_before(now)
    ).update(status=Reminder.Status.FAILED, last_error=INTERRUPTED)


@transaction.atomic
def reminders_queue(*, now: datetime) -> list[int]:
    """The reminders to put on the queue now; each is marked queued so that a second beat,
    or the next sweep, does not queue it again before REMINDER_REQUEUE_SECONDS."""
    requeue = now - timedelta(seconds=settings.REMINDER_REQUEUE_SECONDS)
    not_queued_lately = Q(queued_at__isnull=True) | Q(queued_at__lt=requeue)
    ready = Q(status=Reminder.Status.PENDING, next_attempt_at__lte=now) | Q(
        status=Reminder.Status.CLAIMED, claimed_at__lt=_stale_before(now)
    )
    ids = list(
        Reminder.objects.select_for_update(skip_locked=True)
        .filter(ready & not_queued_lately)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[: settings.REMINDER_QUEUE_BATCH]
    )
    if ids:
        Reminder.objects.filter(pk__in=ids).update(queued_at=now)
    return ids
