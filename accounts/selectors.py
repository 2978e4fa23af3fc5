"""Reads of accounts: a researcher's own API tokens."""

from typing import Any

from django.utils import timezone

from accounts.models import ApiToken


def tokens_of(*, user: Any) -> list[ApiToken]:
    """The user's tokens, newest first, each with `expired` set (revoked ones included)."""
    now = timezone.now()
    tokens = list(ApiToken.objects.filter(user=user).order_by("-created_at", "-pk"))
    for token in tokens:
        token.expired = token.expires_at is not None and token.expires_at <= now  # type: ignore[attr-defined]
    return tokens


def token_of(*, user: Any, pk: int) -> ApiToken | None:
    """One of the user's own tokens; None for another user's or a missing one."""
    return ApiToken.objects.filter(user=user, pk=pk).first()
