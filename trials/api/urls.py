from django.urls import path

from trials.api import participant

urlpatterns = [
    path("studies/<slug:slug>/enrol", participant.EnrolView.as_view(), name="api-enrol"),
    path("sessions/<str:token>", participant.SessionStateView.as_view(), name="api-session"),
    path(
        "sessions/<str:token>/responses",
        participant.ResponseCreateView.as_view(),
        name="api-responses",
    ),
    path(
        "sessions/<str:token>/complete",
        participant.SessionCompleteView.as_view(),
        name="api-complete",
    ),
]
