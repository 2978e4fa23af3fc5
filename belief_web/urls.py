from collections.abc import Callable

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.views import ThrottledAdminLoginView, ThrottledLoginView
from common import errors
from common.health import healthz
from reminders import views as reminder_views
from trials import views as trial_views


def favicon(request: HttpRequest) -> HttpResponse:
    """/favicon.ico, asked for by browsers and tools that ignore the pages' icon link."""
    # Resolved per request: the manifest of hashed names exists only after collectstatic.
    return HttpResponsePermanentRedirect(static("favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path("s/<slug:slug>/", trial_views.enrol, name="enrol"),
    path("t/<str:token>/", trial_views.task, name="task"),
    path("r/<str:token>/", trial_views.return_visit, name="return"),
    path("r/<str:token>/calendar.ics", trial_views.return_calendar, name="return-calendar"),
    path("r/<str:token>/stop/", reminder_views.stop, name="reminders-stop"),
    path("api/v1/", include("trials.api.urls")),
    path("api/v1/", include("scoring.api.urls")),
    path("api/v1/", include("reminders.api")),
    path("api/v1/", include("instruments.api.urls")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    path("healthz", healthz, name="healthz"),
    path("dashboard/", include("dashboard.urls")),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/login/", ThrottledAdminLoginView.as_view(), name="admin-login"),
    path("admin/", admin.site.urls),
]


ErrorView = Callable[..., HttpResponse]


def _by_prefix(api_view: ErrorView, html_view: ErrorView) -> ErrorView:
    """JSON errors under /api/, Django's pages elsewhere."""

    def handler(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        if request.path.startswith("/api/"):
            return api_view(request, exception)
        return html_view(request, exception)

    return handler


handler400 = _by_prefix(errors.json_400, defaults.bad_request)
handler403 = _by_prefix(errors.json_403, defaults.permission_denied)
handler404 = _by_prefix(errors.json_404, defaults.page_not_found)


def handler500(request: HttpRequest) -> HttpResponse:
    """The documented JSON error shape under /api/ (clients parse it), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return errors.json_500(request)
    return defaults.server_error(request)
