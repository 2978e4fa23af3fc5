"""One score row per (session, score version): the result of the scoring task."""

from django.db import models
from django.db.models import Q

from trials.models import Session


class Score(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="scores")
    score_version = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    reason = models.TextField(blank=True)
    # Every score column of scoring.metrics.SCORE_COLUMNS except flags; NaN stored as null.
    values = models.JSONField(default=dict)
    flags = models.JSONField(default=list)
    # Times the latest scoring of this row was started (+1 when a task starts; a rescore
    # request sets it back to 0, so rescores never add up). A row that keeps being started
    # without finishing (worker lost, hard time limit) is given up (services.MAX_ATTEMPTS).
    attempts = models.PositiveSmallIntegerField(default=0)
    # When the scoring task was last published for this row: the sweep leaves a row
    # queued less than its grace period ago alone, since that message is still on its way.
    queued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    scored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "score_version"], name="score_unique"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "done", "failed"]), name="score_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["score_version", "status"])]

    def __str__(self) -> str:
        return f"score v{self.score_version} of session {self.session_id}"


class Rescore(models.Model):
    """A study's latest re-scoring: while it runs, another request is answered with it."""

    study = models.OneToOneField("trials.Study", on_delete=models.CASCADE, related_name="+")
    requested_at = models.DateTimeField()
    sessions = models.PositiveIntegerField(default=0)
    batches = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"rescore of study {self.study_id} at {self.requested_at:%Y-%m-%d %H:%M}"
