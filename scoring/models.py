"""Rows of scoring: one score per (session, score version), a study's rescore, its group fit."""

from django.db import models
from django.db.models import Q

from trials.models import Session, Study


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


class ModelFit(models.Model):
    """The latest group fit of a study's scored sessions (scoring.analysis.group_analysis).

    ``result`` holds the whole group level: the mixed model, the hierarchical fits' group
    means, the group model comparison and reliability. It is computed in a task (a few
    seconds on 5,000 sessions, most of it reading 200,000 trials), never inside a request;
    the results page and the summary API both show this row, with the data it was fitted
    on (``fingerprint``, ``n_sessions``). Moved from the dashboard app (its table with it:
    migrations dashboard 0002 and scoring 0004).
    """

    class Status(models.TextChoices):
        FITTING = "fitting", "fitting"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    study = models.OneToOneField(Study, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.FITTING)
    # The data the stored result describes, and the data a running fit was asked for.
    fingerprint = models.CharField(max_length=100, blank=True)
    pending_fingerprint = models.CharField(max_length=100, blank=True)
    n_sessions = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True)
    requested_at = models.DateTimeField(null=True, blank=True)
    fitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["fitting", "done", "failed"]),
                name="modelfit_status_valid",
            )
        ]

    def __str__(self) -> str:
        return f"mixed model of study {self.study_id} ({self.status})"
