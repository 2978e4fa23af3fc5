"""The researchers' and the admin's login pages, locked after too many failed log-ins.

The counters and the client address come from common/throttle.py (its docstring lists the
settings: LOGIN_FAILURE_LIMIT, LOGIN_FAILURE_WINDOW_S, LOGIN_ADDRESS_FAILURE_LIMIT,
LOGIN_LOCK_S, TRUSTED_PROXY_COUNT).
"""

import hashlib
import logging
import time
from typing import Any

from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _

from common.throttle import Window, client_ip, setting_int

log = logging.getLogger(__name__)


def login_window() -> Window:
    return Window(
        "login-failure",
        setting_int("LOGIN_FAILURE_LIMIT", 10),
        setting_int("LOGIN_FAILURE_WINDOW_S", 900),
    )


def login_address_window() -> Window:
    return Window(
        "login-address-failure",
        setting_int("LOGIN_ADDRESS_FAILURE_LIMIT", 30),
        setting_int("LOGIN_FAILURE_WINDOW_S", 900),
    )


def _lock_seconds() -> int:
    return setting_int("LOGIN_LOCK_S", login_window().seconds)


class ThrottledLoginView(LoginView):
    """Django's LoginView that locks an (address, username) pair after too many failures.

    While locked every attempt is refused with 429 before the password is checked, so a
    right guess during the lock tells the guesser nothing.
    """

    def _ident(self) -> str:
        username = str(self.request.POST.get("username", "")).strip().lower()
        digest = hashlib.sha256(username.encode("utf-8", "replace")).hexdigest()[:32]
        return f"{client_ip(self.request)}:{digest}"

    def _lock_key(self) -> str:
        return f"throttle:login-lock:{self._ident()}"

    def _address_lock_key(self) -> str:
        return f"throttle:login-address-lock:{client_ip(self.request)}"

    def _locked_for(self) -> tuple[int, bool]:
        """Seconds locked (0: not), and whether the whole address is locked."""
        locks = cache.get_many([self._lock_key(), self._address_lock_key()])
        now = time.time()
        address = locks.get(self._address_lock_key())
        if address:
            return max(1, int(float(address) - now) + 1), True
        until = locks.get(self._lock_key())
        return (max(0, int(float(until) - now) + 1) if until else 0), False

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            wait, whole_address = self._locked_for()
        except Exception:  # noqa: BLE001 - no cache: Django's own login, unthrottled
            log.warning("login throttle: cache unavailable, not throttling", exc_info=True)
            return super().post(request, *args, **kwargs)
        if wait:
            return self._refuse(wait, whole_address=whole_address)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: Any) -> HttpResponse:
        window, by_address = login_window(), login_address_window()
        address = client_ip(self.request)
        try:
            failures = window.fail(self._ident())
            address_failures = by_address.fail(address)
            lock = _lock_seconds()
            if by_address.limit > 0 and address_failures >= by_address.limit:
                cache.set(self._address_lock_key(), time.time() + lock, timeout=lock)
                by_address.reset(address)
                return self._refuse(lock, whole_address=True)
            if failures >= window.limit:
                cache.set(self._lock_key(), time.time() + lock, timeout=lock)
                window.reset(self._ident())
                return self._refuse(lock)
        except Exception:  # noqa: BLE001
            log.warning("login throttle: cache unavailable, failure not counted")
        return super().form_invalid(form)

    def form_valid(self, form: Any) -> HttpResponse:
        try:
            login_window().reset(self._ident())
        except Exception:  # noqa: BLE001
            log.warning("login throttle: cache unavailable, counter not reset")
        return super().form_valid(form)

    def _refuse(self, wait: int, *, whole_address: bool = False) -> HttpResponse:
        minutes = max(1, (wait + 59) // 60)
        # The login template shows a fixed "wrong password" line for any form error, so the
        # reason travels as a message (dashboard/base.html shows messages).
        message = (
            _(
                "Too many failed log-ins from this address. "
                "Please wait %(minutes)d minutes before trying again."
            )
            if whole_address
            else _(
                "Too many failed log-ins for this username. "
                "Please wait %(minutes)d minutes before trying again."
            )
        )
        messages.error(self.request, message % {"minutes": minutes})
        form = self.get_form_class()(self.request)  # unbound: no "wrong password" line
        response = self.render_to_response(self.get_context_data(form=form))
        response.status_code = 429
        response["Retry-After"] = str(wait)
        return response


class ThrottledAdminLoginView(ThrottledLoginView):
    """The admin's login page (staff only), with the same lock as the researchers' login.

    Django's AdminSite.login builds a plain LoginView on each call; this is that view, with the
    admin's form, template and context, routed at /admin/login/ ahead of admin.site.urls.
    """

    template_name = "admin/login.html"

    def get_form_class(self) -> Any:
        from django.contrib.admin.forms import AdminAuthenticationForm

        return AdminAuthenticationForm

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        from django.contrib import admin

        request.current_app = admin.site.name
        if request.method == "GET" and admin.site.has_permission(request):
            return redirect(reverse("admin:index", current_app=admin.site.name))
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        from django.contrib import admin

        context = super().get_context_data(**kwargs)
        request = self.request
        context.update(
            {
                **admin.site.each_context(request),
                "title": _("Log in"),
                "subtitle": None,
                "app_path": request.get_full_path(),
                "username": request.user.get_username(),
            }
        )
        if not context.get(REDIRECT_FIELD_NAME):
            context[REDIRECT_FIELD_NAME] = reverse("admin:index", current_app=admin.site.name)
        return context
