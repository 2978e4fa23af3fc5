"""The chain of the audit log (pure): each entry's hash covers the previous one.

Two kinds of link. Entries written since the chain was keyed carry an HMAC-SHA256 under a
key that is not in the database (settings.AUDIT_KEY): rewriting one and recomputing the
later links needs that key. Entries from before (`keyed` false) carry the plain sha256 of the
first version; they may only come before the first keyed entry, whose MAC covers the last
of them, so they cannot be rewritten either once one keyed entry follows.

What the chain cannot show alone is entries removed from the end (or all of them): that is
the head's job (audit.head), a copy of the last entry's sequence number and hash kept outside
the table.
"""

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def _message(prev_hash: str, fields: Mapping[str, Any]) -> bytes:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return f"{prev_hash}\n{canonical}".encode()


def entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """sha256 of the previous hash and the entry's fields in canonical JSON (unkeyed links)."""
    return hashlib.sha256(_message(prev_hash, fields)).hexdigest()


def entry_mac(key: bytes, prev_hash: str, fields: Mapping[str, Any]) -> str:
    """HMAC-SHA256 under `key` of the previous hash and the entry's fields (keyed links)."""
    return hmac.new(key, _message(prev_hash, fields), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Link:
    """One entry as the chain sees it."""

    id: int
    seq: int
    prev_hash: str
    hash: str
    keyed: bool
    fields: Mapping[str, Any]


def first_break(links: Iterable[Link], key: bytes) -> int | None:
    """The id of the first entry whose link, hash or sequence number does not verify.

    Sequence numbers run 1, 2, 3... with no gap; an unkeyed entry after a keyed one is a
    break (a rewritten tail cannot downgrade itself to the unkeyed hash).
    """
    expected_prev = GENESIS
    keyed_seen = False
    for n, link in enumerate(links, start=1):
        if link.keyed:
            good = entry_mac(key, link.prev_hash, {**link.fields, "seq": link.seq})
            keyed_seen = True
        else:
            good = "" if keyed_seen else entry_hash(link.prev_hash, link.fields)
        if (
            link.seq != n
            or link.prev_hash != expected_prev
            or not hmac.compare_digest(good, link.hash)
        ):
            return link.id
        expected_prev = link.hash
    return None


def head_mac(key: bytes, *, seq: int, entry_id: int, last_hash: str) -> str:
    """The MAC of a head: editing the head file needs the key too."""
    message = f"audit-head\n{seq}\n{entry_id}\n{last_hash}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
