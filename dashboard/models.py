"""The dashboard's own rows: the audit trail of withdrawals and the stored mixed-model fit."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from trials.models import Study


class Withdrawal(models.Model):
    """Who withdrew which participant, when, and how many rows were deleted.

    The participant's data is gone; this record stays. The study is PROTECTed so that an
    audit trail cannot disappear with a careless delete of the study.
    """

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="+")
    participant_pk = models.BigIntegerField(unique=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    # Kept as text too: the account may be deleted later, the record may not lose its author.
    withdrawn_by_username = models.CharField(max_length=150)
    withdrawn_at = models.DateTimeField()
    reason = models.TextField(blank=True)
    n_sessions_kept = models.PositiveIntegerField(default=0)
    n_responses_deleted = models.PositiveIntegerField(default=0)
    n_trials_deleted = models.PositiveIntegerField(default=0)
    n_scores_deleted = models.PositiveIntegerField(default=0)
    n_identities_deleted = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-withdrawn_at"]

    def __str__(self) -> str:
        return f"withdrawal of P{self.participant_pk} from {self.study_id}"


class ModelFit(models.Model):
    """The latest group fit of a study's scored sessions (scoring.analysis.group_analysis).

    ``result`` holds the whole group level: the mixed model, the hierarchical fits' group
    means, the group model comparison and reliability. It is computed in a task (a few
    seconds on 5,000 sessions, most of it reading 200,000 trials), never inside a request;
    the results page and the summary API both show this row, with the data it was fitted
    on (``fingerprint``, ``n_sessions``).
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
