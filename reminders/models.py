"""Participants' e-mail addresses (kept apart from their data) and the reminders sent to them."""

from django.db import models
from django.db.models import Q

from trials.models import Participant, Study, Timepoint


class Contact(models.Model):
    """A participant's address for reminders: never exported, deleted on stop or withdrawal.

    Like ParticipantIdentity it lives in a table of its own, which no export joins, so that
    an address cannot travel with the data.
    """

    participant = models.OneToOneField(
        Participant, on_delete=models.CASCADE, related_name="contact"
    )
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="+")
    email = models.EmailField(max_length=254)
    # The participant's own time zone (IANA name, from the browser) for the times in a
    # message; blank: UTC.
    time_zone = models.CharField(max_length=64, blank=True)
    consented_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"contact of participant {self.participant_id}"


class Reminder(models.Model):
    """One reminder of one visit: at most one row per (participant, timepoint, kind).

    Its status is the claim that makes a send happen once (reminders.services):
    pending -> claimed (a worker holds it; no byte has gone to the SMTP server) ->
    sending (the message is being handed over) -> sent | failed | cancelled.
    """

    class Kind(models.TextChoices):
        OPENS = "opens", "opens"
        CLOSING = "closing", "closing"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        CLAIMED = "claimed", "claimed"
        SENDING = "sending", "sending"
        SENT = "sent", "sent"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="reminders", db_index=False
    )
    timepoint = models.ForeignKey(Timepoint, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # The window the reminder announces, as it stood when the reminder fell due.
    opens_at = models.DateTimeField()
    closes_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # When a message for it was last put on the queue; the sweep re-queues only old ones.
    queued_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "timepoint", "kind"], name="reminder_once_per_kind"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["opens", "closing"]), name="reminder_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(
                    status__in=["pending", "claimed", "sending", "sent", "failed", "cancelled"]
                ),
                name="reminder_status_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status="sent") | Q(sent_at__isnull=False),
                name="reminder_sent_has_time",
            ),
        ]
        # The sweep's access path: the unsent reminders.
        indexes = [
            models.Index(
                fields=["status", "next_attempt_at"],
                name="reminder_unsent_idx",
                condition=Q(status__in=["pending", "claimed"]),
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} reminder of P{self.participant_id} at timepoint {self.timepoint_id}"
