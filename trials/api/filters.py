"""Filters of the researcher lists and exports (arm, timepoint, status, dates)."""

from datetime import UTC, date, datetime, time
from typing import Any

import django_filters
from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError

from trials.models import Session

ISO_DATE = ["%Y-%m-%d"]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


class SessionFilter(django_filters.FilterSet):  # type: ignore[misc]
    """`*_after=D` keeps what happened on or after day D (UTC); `*_before=D` before day D."""

    arm = django_filters.CharFilter(field_name="participant__arm__code", help_text="Arm code.")
    timepoint = django_filters.CharFilter(
        field_name="timepoint__label", help_text="Timepoint label."
    )
    status = django_filters.ChoiceFilter(choices=Session.Status.choices)
    imported = django_filters.BooleanFilter(help_text="true: sessions imported from a file.")
    started_after = django_filters.DateFilter(
        method="on_or_after",
        field_name="started_at",
        input_formats=ISO_DATE,
        help_text="ISO date (UTC), inclusive.",
    )
    started_before = django_filters.DateFilter(
        method="before",
        field_name="started_at",
        input_formats=ISO_DATE,
        help_text="ISO date (UTC), exclusive.",
    )
    completed_after = django_filters.DateFilter(
        method="on_or_after",
        field_name="completed_at",
        input_formats=ISO_DATE,
        help_text="ISO date (UTC), inclusive.",
    )
    completed_before = django_filters.DateFilter(
        method="before",
        field_name="completed_at",
        input_formats=ISO_DATE,
        help_text="ISO date (UTC), exclusive.",
    )

    class Meta:
        model = Session
        fields: list[str] = []

    def on_or_after(self, queryset: QuerySet[Session], name: str, value: Any) -> QuerySet[Session]:
        return queryset.filter(**{f"{name}__gte": _midnight(value)})

    def before(self, queryset: QuerySet[Session], name: str, value: Any) -> QuerySet[Session]:
        return queryset.filter(**{f"{name}__lt": _midnight(value)})


def sessions_filtered(*, study_id: int, params: Any) -> QuerySet[Session]:
    """The study's sessions kept by the filters; invalid filter values raise a 400."""
    queryset = Session.objects.filter(participant__study_id=study_id)
    filterset = SessionFilter(params, queryset=queryset)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    queryset = filterset.qs
    return queryset  # type: ignore[no-any-return]
