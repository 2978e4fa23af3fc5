from django.contrib import admin

from scoring.models import ModelFit, Score


@admin.register(Score)
class ScoreAdmin(admin.ModelAdmin[Score]):
    list_display = ("session", "score_version", "status", "scored_at")
    list_filter = ("status", "score_version")
    readonly_fields = ("session", "score_version", "values", "flags", "scored_at", "reason")


@admin.register(ModelFit)
class ModelFitAdmin(admin.ModelAdmin[ModelFit]):
    list_display = ("study", "status", "n_sessions", "fitted_at")
