"""Researcher API authentication: `Authorization: Bearer <token>` (or DRF's `Token <token>`).

Failed attempts are counted per client address; past the `auth_failure` rate every
further attempt from that address is refused with 429 until the window ends. The count lives
in the cache (Redis): with the cache down, authentication fails open to the database (the
token is still checked there; only the failure count is lost), as the participant throttles do.
"""

import logging
import time
from typing import Any

from django.core.cache import cache
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from accounts.models import ApiToken
from accounts.services import token_hash, token_touch

KEYWORDS = (b"bearer", b"token")
log = logging.getLogger(__name__)

DEFAULT_FAILURE_RATE = "20/min"
# Longer than any token we issue (43 characters); anything longer is refused unhashed.
MAX_TOKEN_LENGTH = 128


def _failure_rate() -> tuple[int, int]:
    rate = (api_settings.DEFAULT_THROTTLE_RATES or {}).get("auth_failure", DEFAULT_FAILURE_RATE)
    allowed, period = SimpleRateThrottle.parse_rate(None, rate)  # type: ignore[arg-type]
    return int(allowed or 20), int(period or 60)


class _Ident(BaseThrottle):
    """Only for get_ident: the client address, honouring NUM_PROXIES."""


def _window_key(request: Request) -> tuple[str, int]:
    _, period = _failure_rate()
    now = time.time()
    window = int(now // period)
    wait = int((window + 1) * period - now) + 1
    return f"api-auth-failures:{_Ident().get_ident(request)}:{window}", wait


def _refuse_if_throttled(request: Request) -> None:
    limit, _ = _failure_rate()
    key, wait = _window_key(request)
    try:
        failures = int(cache.get(key, 0))
    except Exception:  # noqa: BLE001 - the cache is down: check the token, do not throttle
        log.warning("api auth throttle: cache unavailable, not throttling", exc_info=True)
        return
    if failures >= limit:
        raise exceptions.Throttled(
            wait=wait, detail="Too many failed authentications from this address."
        )


def _fail(request: Request, message: str, code: str) -> exceptions.AuthenticationFailed:
    key, wait = _window_key(request)
    try:
        cache.add(key, 0, timeout=wait + 60)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr: start again
            cache.set(key, 1, timeout=wait + 60)
    except Exception:  # noqa: BLE001 - the cache is down: the refusal stands, uncounted
        log.warning("api auth throttle: cache unavailable, failure not counted")
    return exceptions.AuthenticationFailed(message, code=code)


class ApiTokenAuthentication(BaseAuthentication):
    """A researcher's API token; the request's `auth` is the ApiToken (its scope matters)."""

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None
        _refuse_if_throttled(request)
        if len(parts) != 2 or len(parts[1]) > MAX_TOKEN_LENGTH:
            raise _fail(request, "Malformed Authorization header.", "invalid_token")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise _fail(request, "Malformed Authorization header.", "invalid_token") from None
        token = ApiToken.objects.select_related("user").filter(key_hash=token_hash(key)).first()
        if token is None or not token.user.is_active:
            raise _fail(request, "Invalid token.", "invalid_token")
        if token.revoked_at is not None:
            raise _fail(request, "This token was revoked.", "token_revoked")
        if token.expires_at is not None and token.expires_at <= timezone.now():
            raise _fail(request, "This token has expired.", "token_expired")
        token_touch(token=token)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # Present, so that DRF answers 401 (not 403) when credentials are missing.
        return 'Bearer realm="api"'
