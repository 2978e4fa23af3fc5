"""Reminder tasks: the beat sweep that finds what is due, and the send of one reminder.

Both are thin: the reminder row's claim (reminders.services) is what makes a send happen
once, so a message delivered twice (two beats, a redelivery after a worker died, a retry
and a sweep) is harmless.
"""

import logging

from celery import shared_task
from django.utils import timezone

from common.publish import task_publish
from reminders.services import (
    reminder_send,
    reminders_fail_interrupted,
    reminders_plan,
    reminders_queue,
)

log = logging.getLogger(__name__)


@shared_task(
    name="reminders.send",
    acks_late=True,
    reject_on_worker_lost=True,
    # Above the SMTP timeout (EMAIL_TIMEOUT) plus the hand-over; REMINDER_CLAIM_STALE_SECONDS
    # is above the hard limit, so a live worker's claim is never taken as stale.
    soft_time_limit=50,
    time_limit=60,
    ignore_result=True,
)
def send_reminder(reminder_id: int) -> str:
    """Send one reminder (or nothing, when another attempt holds or sent it)."""
    outcome = reminder_send(reminder_id=reminder_id)
    if outcome.result == "retry":
        send_reminder.apply_async((reminder_id,), countdown=outcome.retry_in)
    return outcome.result


@shared_task(
    name="reminders.sweep",
    acks_late=True,
    soft_time_limit=50,
    time_limit=60,
    ignore_result=True,
)
def sweep_reminders() -> int:
    """Find the windows that opened or are about to close and queue their reminders (beat)."""
    now = timezone.now()
    planned = reminders_plan(now=now)
    interrupted = reminders_fail_interrupted(now=now)
    ids = reminders_queue(now=now)
    for reminder_id in ids:
        # Committed as queued already: a publish that fails is queued again by a later
        # sweep once REMINDER_REQUEUE_SECONDS have passed.
        task_publish(send_reminder, reminder_id)
    if planned or interrupted or ids:
        log.info(
            "reminders: %d due, %d interrupted marked failed, %d queued",
            planned,
            interrupted,
            len(ids),
        )
    return len(ids)
