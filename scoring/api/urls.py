from django.urls import path

from scoring.api import views

urlpatterns = [
    path("studies/<slug:slug>/scores/", views.ScoreExportView.as_view(), name="api-scores"),
    path("studies/<slug:slug>/summary/", views.SummaryView.as_view(), name="api-summary"),
    path("studies/<slug:slug>/rescore", views.RescoreView.as_view(), name="api-rescore"),
]
