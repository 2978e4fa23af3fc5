"""The hash chain of the audit log (pure)."""

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

GENESIS = "0" * 64


def entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """sha256 of the previous hash and the entry's fields in canonical JSON."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def first_break(entries: Iterable[tuple[int, str, str, Mapping[str, Any]]]) -> int | None:
    """The id of the first entry whose link or hash does not verify, else None.

    Each entry is (id, prev_hash, hash, fields).
    """
    expected_prev = GENESIS
    for entry_id, prev_hash, stored_hash, fields in entries:
        if prev_hash != expected_prev or entry_hash(prev_hash, fields) != stored_hash:
            return entry_id
        expected_prev = stored_hash
    return None
