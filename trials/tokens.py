"""Unguessable tokens for participants and sessions (>= 128 bits of entropy)."""

import secrets
import string

TOKEN_BYTES = 24  # 192 bits, URL-safe base64 -> 32 characters
_CODE_ALPHABET = string.ascii_uppercase.replace("O", "").replace("I", "") + "23456789"


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_completion_code(length: int = 8) -> str:
    """A code a participant can copy by hand: no O/0/I/1 confusion."""
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(length))
