"""Append to the audit log; verify it."""

from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from audit.chain import GENESIS, entry_hash, first_break
from audit.models import AuditEntry

_LOCK_KEY = 0x6277_4155  # an arbitrary constant naming the audit log's advisory lock


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
        last = AuditEntry.objects.order_by("-id").values_list("hash", flat=True).first()
        user = actor if getattr(actor, "is_authenticated", False) else None
        entry = AuditEntry(
            at=timezone.now(),
            actor=user,
            actor_name=getattr(user, "username", "") if user else str(actor or ""),
            action=action,
            study=study,
            target=target[:200],
            detail=detail or {},
            prev_hash=last or GENESIS,
        )
        entry.hash = entry_hash(entry.prev_hash, _fields(entry))
        entry.save(force_insert=True)
    return entry


def audit_verify() -> tuple[int, int | None]:
    """(entries checked, id of the first broken entry or None)."""
    rows = AuditEntry.objects.order_by("id").iterator(chunk_size=2000)
    broken = first_break((e.pk, e.prev_hash, e.hash, _fields(e)) for e in rows)
    return AuditEntry.objects.count(), broken
