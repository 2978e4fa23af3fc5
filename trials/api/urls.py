from django.urls import path

from trials.api import participant, researcher

urlpatterns = [
    # Participant side: the session token is the only credential.
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
    path(
        "participants/<str:token>",
        participant.ParticipantVisitsView.as_view(),
        name="api-participant-visits",
    ),
    # Researcher side: API token or login; members of the study only.
    path("studies/", researcher.StudyListView.as_view(), name="api-studies"),
    path("studies/<slug:slug>/", researcher.StudyDetailView.as_view(), name="api-study"),
    path(
        "studies/<slug:slug>/participants/",
        researcher.ParticipantListView.as_view(),
        name="api-participants",
    ),
    path(
        "studies/<slug:slug>/sessions/",
        researcher.SessionListView.as_view(),
        name="api-study-sessions",
    ),
    path("studies/<slug:slug>/trials/", researcher.TrialExportView.as_view(), name="api-trials"),
    path(
        "studies/<slug:slug>/responses/",
        researcher.ResponseExportView.as_view(),
        name="api-study-responses",
    ),
    path("studies/<slug:slug>/codebook/", researcher.CodebookView.as_view(), name="api-codebook"),
    path("studies/<slug:slug>/imports/", researcher.ImportView.as_view(), name="api-imports"),
    path(
        "studies/<slug:slug>/imports/<str:job_id>/",
        researcher.ImportJobView.as_view(),
        name="api-import-job",
    ),
    path("studies/<slug:slug>/visits/", researcher.VisitExportView.as_view(), name="api-visits"),
    path(
        "studies/<slug:slug>/participants/<int:participant>/anchor",
        researcher.ParticipantAnchorView.as_view(),
        name="api-participant-anchor",
    ),
]
