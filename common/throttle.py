"""Throttles against guessing: participant tokens and study slugs (404s on /t/, /r/, /s/, the
session and enrol API) and logins (the login views, in accounts/views.py, use `Window` and
`client_ip` from here).

Both count in Django's cache (Redis in production, so every gunicorn worker and every machine
shares the counts). Only failures count: a participant whose token is right never adds to a
counter, and pays one cache read per request.

Settings, each with an environment variable of the same name as its default (settings.py
need not list them):
- PARTICIPANT_MISS_LIMIT (30), PARTICIPANT_MISS_WINDOW_S (300): once a client address has had
  that many 404s, every participant URL answers it 429 until the window (which starts at its
  first miss) ends.
  The price for everyone else is one cache read (a Redis GET) per participant request;
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

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.utils.html import escape
from django.utils.translation import gettext as _

from common.env import env_int
from common.errors import error_body

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


def setting_int(name: str, default: int) -> int:
    """settings.NAME, else the environment variable NAME, else the default."""
    return int(getattr(settings, name, env_int(name, default)))


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or X-Forwarded-For behind TRUSTED_PROXY_COUNT proxies."""
    return client_ip_of(request.META)


def client_ip_of(meta: Mapping[str, Any]) -> str:
    """client_ip() of a request's META or a WSGI environ."""
    proxies = setting_int("TRUSTED_PROXY_COUNT", 0)
    remote = str(meta.get("REMOTE_ADDR") or "unknown")
    if proxies <= 0:
        return remote
    header = str(meta.get("HTTP_X_FORWARDED_FOR", ""))
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
        # One key read per participant request; the window's start only once over the limit.
        if int(cache.get(count_key, 0)) < self.limit:
            return 0
        started = float(cache.get(start_key, time.time()))
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
        setting_int("PARTICIPANT_MISS_LIMIT", 30),
        setting_int("PARTICIPANT_MISS_WINDOW_S", 300),
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
