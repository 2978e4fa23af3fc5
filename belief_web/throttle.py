"""Throttles against guessing: participant tokens and study slugs (404s on /t/, /r/, /s/, the
session and enrol API) and logins.

Both count in Django's cache (Redis in production, so every gunicorn worker and every machine
shares the counts). Only failures count: a participant whose token is right never adds to a
counter, and pays one cache read per request.

Settings, each with an environment variable of the same name as its default (settings.py
need not list them):
- PARTICIPANT_MISS_LIMIT (30), PARTICIPANT_MISS_WINDOW_S (300): once a client address has had
  that many 404s, every participant URL answers it 429 until the window (which starts at its
  first miss) ends.
  The price for everyone else is one cache read (a Redis MGET) per participant request;
  PARTICIPANT_MISS_LIMIT=0 switches the throttle off.
- LOGIN_FAILURE_LIMIT (10), LOGIN_FAILURE_WINDOW_S (900): failed logins per (address,
  username); past the limit that pair is locked for LOGIN_LOCK_S (the window by default),
  even with the right password.
- LOGIN_ADDRESS_FAILURE_LIMIT (30): failed logins per address, whatever the usernames, in the
  same window; past it the address is locked for every username (password spraying: one
  guess at each of many usernames). A success does not reset it.
- TRUSTED_PROXY_COUNT (0): how many proxies of ours stand in front of gunicorn. 0: the
  client address is REMOTE_ADDR. n > 0: it is the n-th address from the right of
  X-Forwarded-For (the one the outermost proxy of ours saw). Behind docker-compose's TLS
  proxy set it to 1, otherwise every participant shares the proxy's address and one
  guesser locks them all out.

A cache that is down never takes the participant task down with it: the throttle then lets
every request through (and logs why).
"""

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import escape
from django.utils.translation import gettext as _

from belief_web.env import env_int
from belief_web.errors import error_body

log = logging.getLogger(__name__)

# Participant URLs whose 404s are guesses: tokens (/t/, /r/, the session and participant API)
# and study slugs (/s/<slug>/ and the enrol API, probed to find studies).
PARTICIPANT_PREFIXES = ("/t/", "/r/", "/s/", "/api/v1/sessions/", "/api/v1/participants/")
_ENROL_API = ("/api/v1/studies/", "/enrol")


def participant_path(path: str) -> bool:
    """Whether a 404 on this path counts as a guess (a token or a study slug)."""
    return path.startswith(PARTICIPANT_PREFIXES) or (
        path.startswith(_ENROL_API[0]) and path.endswith(_ENROL_API[1])
    )


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, env_int(name, default)))


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or X-Forwarded-For behind TRUSTED_PROXY_COUNT proxies."""
    proxies = _setting("TRUSTED_PROXY_COUNT", 0)
    remote = str(request.META.get("REMOTE_ADDR") or "unknown")
    if proxies <= 0:
        return remote
    header = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    forwarded = [a.strip() for a in header.split(",")]
    forwarded = [a for a in forwarded if a]
    if not forwarded:
        return remote
    # Each of our proxies appends the address it saw; anything further left is the client's
    # to forge, so the rightmost `proxies` entries are the only ones to trust.
    return forwarded[-min(proxies, len(forwarded))][:64]


@dataclass(frozen=True)
class Window:
    """A failure counter that starts with the first failure and ends `seconds` later."""

    name: str
    limit: int
    seconds: int

    def _keys(self, ident: str) -> tuple[str, str]:
        return f"throttle:{self.name}:{ident}:n", f"throttle:{self.name}:{ident}:t0"

    def blocked_for(self, ident: str) -> int:
        """Seconds until the ident may try again; 0 when it is under the limit."""
        count_key, start_key = self._keys(ident)
        values = cache.get_many([count_key, start_key])
        if int(values.get(count_key, 0)) < self.limit:
            return 0
        started = float(values.get(start_key, time.time()))
        return max(1, int(started + self.seconds - time.time()) + 1)

    def fail(self, ident: str) -> int:
        """Count one failure; returns the count in the current window."""
        count_key, start_key = self._keys(ident)
        cache.add(start_key, time.time(), timeout=self.seconds)
        cache.add(count_key, 0, timeout=self.seconds)
        try:
            return int(cache.incr(count_key))
        except ValueError:  # expired between add and incr: a new window
            cache.set(count_key, 1, timeout=self.seconds)
            return 1

    def reset(self, ident: str) -> None:
        cache.delete_many(list(self._keys(ident)))


def participant_window() -> Window:
    return Window(
        "participant-miss",
        _setting("PARTICIPANT_MISS_LIMIT", 30),
        _setting("PARTICIPANT_MISS_WINDOW_S", 300),
    )


TOO_MANY_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{title}</title></head>
<body><main><h1>{title}</h1><p>{message}</p></main></body></html>
"""


def too_many_response(request: HttpRequest, wait: int) -> HttpResponse:
    """429 in the project's error shape: JSON under /api/, a short page otherwise."""
    message = _(
        "Too many links that do not exist were opened from this address. "
        "Please try again in %(minutes)d minutes."
    ) % {"minutes": max(1, (wait + 59) // 60)}
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse(error_body("throttled", message, retry_after=wait), status=429)
    else:
        page = TOO_MANY_PAGE.format(
            lang=escape(getattr(request, "LANGUAGE_CODE", "en")),
            title=escape(_("Please wait")),
            message=escape(message),
        )
        response = HttpResponse(page, status=429, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(wait)
    response["Cache-Control"] = "no-store"
    return response


class ParticipantMissThrottleMiddleware:
    """429 to a client address that got too many 404s on participant URLs (token guessing)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if not participant_path(request.path):
            return self.get_response(request)
        window = participant_window()
        if window.limit <= 0:  # switched off
            return self.get_response(request)
        ident = client_ip(request)
        try:
            wait = window.blocked_for(ident)
        except Exception:  # noqa: BLE001 - the cache is down: serve, do not throttle
            log.warning("participant throttle: cache unavailable, not throttling", exc_info=True)
            return self.get_response(request)
        if wait:
            return too_many_response(request, wait)
        response = self.get_response(request)
        if response.status_code == 404:
            try:
                window.fail(ident)
            except Exception:  # noqa: BLE001
                log.warning("participant throttle: cache unavailable, miss not counted")
        return response


def login_window() -> Window:
    return Window(
        "login-failure",
        _setting("LOGIN_FAILURE_LIMIT", 10),
        _setting("LOGIN_FAILURE_WINDOW_S", 900),
    )


def login_address_window() -> Window:
    return Window(
        "login-address-failure",
        _setting("LOGIN_ADDRESS_FAILURE_LIMIT", 30),
        _setting("LOGIN_FAILURE_WINDOW_S", 900),
    )


def _lock_seconds() -> int:
    return _setting("LOGIN_LOCK_S", login_window().seconds)


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
