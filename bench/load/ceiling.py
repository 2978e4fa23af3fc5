"""The ceilings: the barest Django view that writes one row, served by the same server.

`/bench/ceiling` runs behind the production middleware stack, like the participant API, so
the ratio between the two measures what the response path adds (DRF, validation, its
queries). `/bench/bare` is the same view served with no middleware at all
(`bench.load.wsgi`): the ratio to it also counts what the middleware costs.
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
    response = JsonResponse({"id": row.pk}, status=201)
    # Behind no middleware nothing else sets it (CommonMiddleware does in production); a
    # server that keeps the connection alive needs it to end the answer without chunking.
    response["Content-Length"] = str(len(response.content))
    return response


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
