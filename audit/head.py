"""The audit log's head: the last entry's sequence number, id and hash, outside the table.

Written to settings.AUDIT_HEAD_FILE after each append commits (and logged on the `audit.head`
logger, so a log sink holds a copy too). Only ever moved forward: of two processes that
appended, the later entry wins, whatever order their writes come in. A head behind the table
(a crash between the commit and the write) is harmless: the entries after it still verify by
the chain. A head ahead of the table, or naming an entry that is not there with that hash,
means entries were removed.
"""

import contextlib
import fcntl
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from audit.chain import head_mac

log = logging.getLogger("audit.head")


@dataclass(frozen=True)
class Head:
    seq: int
    entry_id: int
    hash: str


class HeadError(Exception):
    """The head file exists but cannot be trusted (unreadable, or its MAC is wrong)."""


def head_read(path: Path, key: bytes) -> Head | None:
    """The head stored at `path`; None when there is no file."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
        head = Head(int(data["seq"]), int(data["entry_id"]), str(data["hash"]))
        mac = str(data["mac"])
    except (ValueError, KeyError, TypeError) as exc:
        raise HeadError(f"the head file {path} is not readable ({exc})") from None
    if mac != head_mac(key, seq=head.seq, entry_id=head.entry_id, last_hash=head.hash):
        raise HeadError(f"the head file {path} was not written with this key (edited?)")
    return head


def head_write(path: Path, key: bytes, head: Head, *, force: bool = False) -> bool:
    """Store `head` unless the stored one is further on; True if written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force:
            with contextlib.suppress(HeadError):
                stored = head_read(path, key)
                if stored is not None and stored.seq >= head.seq:
                    return False
        body = {
            "seq": head.seq,
            "entry_id": head.entry_id,
            "hash": head.hash,
            "mac": head_mac(key, seq=head.seq, entry_id=head.entry_id, last_hash=head.hash),
        }
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".audit-head.")
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(body, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    log.info("audit head: seq=%d entry=%d hash=%s", head.seq, head.entry_id, head.hash)
    return True
