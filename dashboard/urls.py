from django.urls import path
from django.views.i18n import set_language

from dashboard.views import (
    instruments,
    overview,
    reminders,
    results,
    sessions,
    setup,
    studies,
    tokens,
)

app_name = "dashboard"

urlpatterns = [
    path("", studies.study_list_view, name="studies"),
    path("new/", studies.study_create_view, name="study-create"),
    path("tokens/", tokens.tokens_view, name="tokens"),
    path("tokens/<int:pk>/revoke/", tokens.token_revoke_view, name="token-revoke"),
    path("language/", set_language, name="language"),
    path("s/<slug:slug>/", overview.overview_view, name="overview"),
    path("s/<slug:slug>/overview.json", overview.overview_json_view, name="overview-json"),
    path("s/<slug:slug>/quality/", overview.quality_view, name="quality"),
    path("s/<slug:slug>/results/", results.results_view, name="results"),
    path("s/<slug:slug>/results/model.json", results.model_json_view, name="model-json"),
    path("s/<slug:slug>/sessions/", sessions.sessions_view, name="sessions"),
    path("s/<slug:slug>/participants/<int:pk>/", sessions.participant_view, name="participant"),
    path(
        "s/<slug:slug>/participants/<int:pk>/anchor/",
        sessions.anchor_view,
        name="participant-anchor",
    ),
    path(
        "s/<slug:slug>/participants/<int:pk>/withdraw/",
        sessions.withdraw_view,
        name="withdraw",
    ),
    path(
        "s/<slug:slug>/participants/<int:pk>/reinstate/",
        sessions.reinstate_view,
        name="reinstate",
    ),
    path("s/<slug:slug>/reminders/", reminders.reminders_view, name="reminders"),
    path("s/<slug:slug>/reminders/due.csv", reminders.due_csv_view, name="reminders-due"),
    path("s/<slug:slug>/setup/", setup.settings_view, name="settings"),
    path("s/<slug:slug>/setup/status/", setup.status_view, name="status"),
    path("s/<slug:slug>/setup/design/", setup.design_view, name="design"),
    path("s/<slug:slug>/setup/arms/<int:pk>/", setup.arm_edit_view, name="arm-edit"),
    path("s/<slug:slug>/setup/arms/<int:pk>/delete/", setup.arm_delete_view, name="arm-delete"),
    path(
        "s/<slug:slug>/setup/timepoints/<int:pk>/",
        setup.timepoint_edit_view,
        name="timepoint-edit",
    ),
    path(
        "s/<slug:slug>/setup/timepoints/<int:pk>/delete/",
        setup.timepoint_delete_view,
        name="timepoint-delete",
    ),
    path("s/<slug:slug>/setup/lists/", setup.lists_view, name="lists"),
    path("s/<slug:slug>/setup/members/", setup.members_view, name="members"),
    path("s/<slug:slug>/instruments/", instruments.instruments_view, name="instruments"),
    path(
        "s/<slug:slug>/participants/<int:pk>/ratings/<int:session>/<slug:code>/",
        instruments.rating_view,
        name="rating",
    ),
    path("s/<slug:slug>/links/", setup.links_view, name="links"),
    path("s/<slug:slug>/preview/", setup.preview_view, name="preview"),
]
