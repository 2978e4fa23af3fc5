from django.urls import path

from instruments.api import views

urlpatterns = [
    path(
        "studies/<slug:slug>/instruments/",
        views.InstrumentsView.as_view(),
        name="api-instruments",
    ),
    path("studies/<slug:slug>/ratings/", views.RatingView.as_view(), name="api-ratings"),
    path(
        "studies/<slug:slug>/questionnaires/",
        views.QuestionnaireExportView.as_view(),
        name="api-questionnaires",
    ),
    path(
        "studies/<slug:slug>/instrument-scores/",
        views.InstrumentScoreExportView.as_view(),
        name="api-instrument-scores",
    ),
]
