"""The ceiling's one table, only in the bench's scratch database (migrate --run-syncdb)."""

from django.db import models


class CeilingRow(models.Model):
    created_at = models.DateTimeField()
    value = models.IntegerField()

    # Declared: mypy's settings do not install bench.load, so the plugin cannot add it.
    objects: "models.Manager[CeilingRow]" = models.Manager()

    class Meta:
        db_table = "bench_ceiling_row"

    def __str__(self) -> str:
        return f"ceiling row {self.pk}"
