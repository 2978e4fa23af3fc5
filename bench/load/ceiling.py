"""The ceiling: the barest Django view that writes one row, served by the same gunicorn.

It runs behind the production middleware stack, like the participant API, so the ratio
between the two measures what the response path adds (DRF, validation, its queries).
"""

import json

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from bench.load.models import CeilingRow


def _value(request: HttpRequest) -> int:
    try:
        return int(json.loads(request.body or b"{}").get("value", 0))
    except (ValueError, TypeError, AttributeError):
        return 0


@csrf_exempt
def ceiling_orm(request: HttpRequest) -> JsonResponse:
    """One INSERT through the ORM (`Model.objects.create`)."""
    row = CeilingRow.objects.create(created_at=timezone.now(), value=_value(request))
    return JsonResponse({"id": row.pk}, status=201)


@csrf_exempt
def ceiling_cursor(request: HttpRequest) -> JsonResponse:
    """The same INSERT through a raw cursor: what the ORM itself costs."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_ceiling_row (created_at, value) VALUES (now(), %s) RETURNING id",
            [_value(request)],
        )
        (pk,) = cursor.fetchone()
    return JsonResponse({"id": pk}, status=201)
