"""The production URLconf plus the ceiling views (bench settings only)."""

from django.urls import path

from belief_web.urls import handler400, handler403, handler404, urlpatterns as production
from bench.load.ceiling import ceiling_cursor, ceiling_orm

urlpatterns = [
    path("bench/bare", ceiling_orm),  # served with no middleware (bench.load.wsgi)
    path("bench/ceiling", ceiling_orm),
    path("bench/ceiling-cursor", ceiling_cursor),
    *production,
]

__all__ = ["handler400", "handler403", "handler404", "urlpatterns"]
