"""Writes of accounts: create and revoke researchers' API tokens."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiToken
from audit.services import audit_record

TOKEN_BYTES = 32
PREFIX_LENGTH = 8
#: The one default lifetime of a new token, from the command line and the dashboard alike: a
#: token pasted into a script that is then shared or lost stops working on its own. A token
#: that never expires is still possible, but only when asked for (`--no-expiry`, a blank field).
DEFAULT_EXPIRES_DAYS = 90


def token_hash(token: str) -> str:
    """The stored form of a token: sha256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    #: the whole token: shown to the researcher once, stored nowhere
    key: str


def token_create(
    *, user: Any, scope: str = ApiToken.Scope.READ, name: str = "", expires_days: int | None = None
) -> NewToken:
    """A new token for a researcher; the returned key is the only copy."""
    if scope not in ApiToken.Scope.values:
        raise ValueError(f"scope must be one of {', '.join(ApiToken.Scope.values)}")
    if expires_days is not None and expires_days < 1:
        raise ValueError("expires_days must be at least 1")
    key = secrets.token_urlsafe(TOKEN_BYTES)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        scope=scope,
        prefix=key[:PREFIX_LENGTH],
        key_hash=token_hash(key),
        expires_at=timezone.now() + timedelta(days=expires_days) if expires_days else None,
    )
    audit_record(
        actor=user, action="api_token.create", target=token.prefix, detail={"scope": scope}
    )
    return NewToken(token=token, key=key)


def token_revoke(*, token: ApiToken, actor: Any = None) -> bool:
    """Revoke a token (idempotent); True if this call revoked it."""
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if revoked:
        audit_record(actor=actor or token.user, action="api_token.revoke", target=token.prefix)
    token.refresh_from_db(fields=["revoked_at"])
    return bool(revoked)


def token_touch(*, token: ApiToken, now: Any = None) -> None:
    """Record a use, at most once a minute, with a conditional UPDATE (never save())."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=60)
    if token.last_used_at is not None and token.last_used_at > stale:
        return
    ApiToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale)
    ).update(last_used_at=now)
    token.last_used_at = now
