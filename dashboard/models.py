"""The dashboard's own rows: the audit trail of withdrawals (the group fit is scoring's)."""

from django.conf import settings
from django.db import models

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
