"""An append-only log of researcher actions; each entry chains to the previous by a keyed hash.

What it promises and what it cannot: docs/audit.md.
"""

from django.db import models


class AuditEntry(models.Model):
    at = models.DateTimeField()
    actor = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text too: the chain must verify after a user is deleted.
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64)
    study = models.CharField(max_length=64, blank=True)
    target = models.CharField(max_length=200, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    # 1, 2, 3...: the head outside the table names the last one, so a removed tail shows.
    seq = models.BigIntegerField(unique=True)
    # HMAC under settings.AUDIT_KEY; False only for entries written before the chain was keyed.
    keyed = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["study", "at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.study}"
