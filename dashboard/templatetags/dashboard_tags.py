"""Small formatting filters for the dashboard's templates."""

import math
from datetime import timedelta
from typing import Any

from django import template
from django.utils.translation import gettext as _, ngettext

register = template.Library()


@register.filter
def duration(value: timedelta | None) -> str:
    """7 days, 4 h, 1 day 12 h, 30 min."""
    if value is None:
        return ""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return _("immediately")
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = []
    if days:
        parts.append(ngettext("%(n)s day", "%(n)s days", days) % {"n": days})
    if hours:
        parts.append(_("%(n)s h") % {"n": hours})
    if minutes:
        parts.append(_("%(n)s min") % {"n": minutes})
    return " ".join(parts)


@register.filter
def number(value: Any, digits: int = 2) -> str:
    """A figure rounded for reading; missing or NaN shows as an en dash."""
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number) or math.isinf(number):
        return "–"
    return f"{number:.{int(digits)}f}"


@register.filter
def get(mapping: Any, key: Any) -> Any:
    """mapping[key], or None."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None
