from django.contrib import admin

from trials import models


class ArmInline(admin.TabularInline[models.Arm, models.Study]):
    model = models.Arm
    extra = 0


class TimepointInline(admin.TabularInline[models.Timepoint, models.Study]):
    model = models.Timepoint
    extra = 0


class StudyListInline(admin.TabularInline[models.StudyEventList, models.Study]):
    model = models.StudyEventList
    extra = 0


@admin.register(models.Study)
class StudyAdmin(admin.ModelAdmin[models.Study]):
    list_display = ("slug", "title", "status", "br_mode", "created_at")
    inlines = [ArmInline, TimepointInline, StudyListInline]


@admin.register(models.EventList)
class EventListAdmin(admin.ModelAdmin[models.EventList]):
    list_display = ("name", "created_at")


@admin.register(models.Session)
class SessionAdmin(admin.ModelAdmin[models.Session]):
    list_display = ("pk", "participant", "timepoint", "status", "step_index", "completed_at")
    list_filter = ("status",)
    readonly_fields = ("token", "plan")
