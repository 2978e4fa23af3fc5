"""Append to the audit log; verify it (the chain, and the head kept outside the table)."""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from audit.chain import GENESIS, Link, entry_mac, first_break
from audit.head import Head, HeadError, head_read, head_write
from audit.models import AuditEntry

log = logging.getLogger(__name__)

_LOCK_KEY = 0x6277_4155  # an arbitrary constant naming the audit log's advisory lock


def audit_key() -> bytes:
    """The chain's key: AUDIT_KEY, else one derived from SECRET_KEY (never in the database)."""
    configured = str(getattr(settings, "AUDIT_KEY", "") or "")
    if configured:
        return configured.encode()
    return salted_hmac("audit.chain-key", "audit", algorithm="sha256").digest()


def audit_head_path() -> Path:
    return Path(settings.AUDIT_HEAD_FILE)


def _fields(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": entry.at.isoformat(),
        "actor": entry.actor_name,
        "action": entry.action,
        "study": entry.study,
        "target": entry.target,
        "detail": entry.detail,
    }


def audit_record(
    *,
    actor: Any,
    action: str,
    study: str = "",
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry, chained to the last; appends are serialised by a lock."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        last = AuditEntry.objects.order_by("-id").values_list("hash", "seq").first()
        user = actor if getattr(actor, "is_authenticated", False) else None
        entry = AuditEntry(
            at=timezone.now(),
            actor=user,
            actor_name=getattr(user, "username", "") if user else str(actor or ""),
            action=action,
            study=study,
            target=target[:200],
            detail=detail or {},
            prev_hash=last[0] if last else GENESIS,
            seq=last[1] + 1 if last else 1,
            keyed=True,
        )
        entry.hash = entry_mac(audit_key(), entry.prev_hash, {**_fields(entry), "seq": entry.seq})
        entry.save(force_insert=True)
        head = Head(entry.seq, entry.pk, entry.hash)
        # Only once the entry is committed (the caller's transaction may be larger): a head
        # must never name an entry that a rollback took back.
        transaction.on_commit(lambda: _head_store(head))
    return entry


def _head_store(head: Head) -> None:
    try:
        head_write(audit_head_path(), audit_key(), head)
    except OSError:
        # The action happened and is in the table; verify_audit_log will say the head lags.
        log.exception("audit head: could not write %s", audit_head_path())


@dataclass
class Verification:
    """What verify_audit_log found: entries read, the first broken one, problems found."""

    count: int
    broken_at: int | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _links() -> Any:
    for e in AuditEntry.objects.order_by("id").iterator(chunk_size=2000):
        yield Link(e.pk, e.seq, e.prev_hash, e.hash, e.keyed, _fields(e))


def audit_verify() -> Verification:
    """Check the chain (keyed links, sequence) and the head outside the table."""
    key = audit_key()
    broken = first_break(_links(), key)
    count = AuditEntry.objects.count()
    result = Verification(count=count, broken_at=broken)
    if broken is not None:
        result.problems.append(f"audit log broken at entry {broken} ({count} entries read)")
    path = audit_head_path()
    try:
        head = head_read(path, key)
    except HeadError as exc:
        result.problems.append(str(exc))
        return result
    if head is None:
        if count:
            result.problems.append(
                f"no head at {path}: truncation or deletion of the last entries cannot be ruled "
                "out (run `verify_audit_log --anchor` once, after checking the log by other means)"
            )
        return result
    last = AuditEntry.objects.order_by("-id").values_list("seq", "id").first()
    at_head = AuditEntry.objects.filter(pk=head.entry_id).values_list("seq", "hash").first()
    if at_head is None or at_head != (head.seq, head.hash):
        result.problems.append(
            f"the head ({path}) names entry {head.entry_id} (number {head.seq}), which is not "
            f"in the table as it was written: the log was truncated or its last entries "
            f"deleted or rewritten ({count} entries now, {head.seq} at the head)"
        )
    elif last is not None and last[0] > head.seq:
        result.notes.append(f"{last[0] - head.seq} entries after the head (not anchored yet)")
    return result


def audit_anchor() -> Head | None:
    """Write the head from the table as it is now (once, after an upgrade or a restore)."""
    last = AuditEntry.objects.order_by("-id").values_list("seq", "id", "hash").first()
    if last is None:
        return None
    head = Head(*last)
    head_write(audit_head_path(), audit_key(), head, force=True)
    return head
