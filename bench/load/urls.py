"""The production URLconf plus the ceiling views and the lean prototype (bench settings only)."""

from django.urls import path

from belief_web.urls import handler400, handler403, handler404, urlpatterns as production
from bench.load.ceiling import ceiling_cursor, ceiling_orm
from bench.load.lean import lean_response

urlpatterns = [
    path("bench/ceiling", ceiling_orm),
    path("bench/ceiling-cursor", ceiling_cursor),
    path("bench/lean/sessions/<str:token>/responses", lean_response),
    *production,
]

__all__ = ["handler400", "handler403", "handler404", "urlpatterns"]
