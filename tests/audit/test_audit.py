"""The audit log: a keyed chain, append-only in PostgreSQL, a head outside the table.

Tampering is done as the table's owner would: with the row triggers bypassed
(session_replication_role = replica), so that only the chain and the head are left to
catch it.
"""

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit.chain import GENESIS, Link, entry_hash, entry_mac, first_break
from audit.head import Head, head_read
from audit.models import AuditEntry
from audit.services import _fields, audit_key, audit_record, audit_verify

KEY = b"k" * 32
REPO = Path(__file__).resolve().parents[2]


def fields(action: str) -> dict[str, Any]:
    return {"at": "2026-01-01T00:00:00+00:00", "actor": "ana", "action": action}


def keyed_links(actions: list[str], key: bytes = KEY) -> list[Link]:
    links, prev = [], GENESIS
    for n, action in enumerate(actions, 1):
        digest = entry_mac(key, prev, {**fields(action), "seq": n})
        links.append(Link(n, n, prev, digest, True, fields(action)))
        prev = digest
    return links


def test_entry_mac_depends_on_the_key_every_field_and_the_previous_hash() -> None:
    base = entry_mac(KEY, GENESIS, fields("export"))
    assert len(base) == 64
    assert entry_mac(b"other", GENESIS, fields("export")) != base
    assert entry_mac(KEY, "1" * 64, fields("export")) != base
    assert entry_mac(KEY, GENESIS, fields("import")) != base
    assert entry_hash(GENESIS, fields("export")) != base


def test_first_break_keyed_links() -> None:
    links = keyed_links(["a", "b", "c"])
    assert first_break(links, KEY) is None
    assert first_break(links, b"wrong key") == 1
    edited = [links[0], Link(2, 2, links[0].hash, links[1].hash, True, fields("x")), links[2]]
    assert first_break(edited, KEY) == 2
    # A gap in the sequence (an entry removed and the chain relinked by someone with the key
    # would still need the numbers to run on).
    renumbered = [links[0], Link(2, 3, links[0].hash, links[1].hash, True, fields("b"))]
    assert first_break(renumbered, KEY) == 2


def test_unkeyed_links_only_before_the_first_keyed_one() -> None:
    h1 = entry_hash(GENESIS, fields("old"))
    legacy = Link(1, 1, GENESIS, h1, False, fields("old"))
    mac2 = entry_mac(KEY, h1, {**fields("new"), "seq": 2})
    keyed = Link(2, 2, h1, mac2, True, fields("new"))
    assert first_break([legacy, keyed], KEY) is None
    # A tail rewritten as unkeyed (sha256 needs no key) after a keyed entry is a break.
    h3 = entry_hash(mac2, fields("forged"))
    assert first_break([legacy, keyed, Link(3, 3, mac2, h3, False, fields("forged"))], KEY) == 3


@pytest.fixture
def appended(django_capture_on_commit_callbacks: Any) -> Callable[..., AuditEntry]:
    """audit_record with the after-commit head write run (tests run inside a transaction)."""

    def append(**kwargs: Any) -> AuditEntry:
        with django_capture_on_commit_callbacks(execute=True):
            return audit_record(**kwargs)

    return append


def head_now() -> Head | None:
    return head_read(Path(settings.AUDIT_HEAD_FILE), audit_key())


@pytest.mark.django_db
def test_entries_chain_verify_and_move_the_head(appended: Callable[..., AuditEntry]) -> None:
    user = User.objects.create_user("ana")
    first = appended(actor=user, action="export", study="demo", target="trials.csv")
    second = appended(actor=user, action="withdraw", study="demo", detail={"participant": 7})
    assert first.prev_hash == GENESIS
    assert second.prev_hash == first.hash
    assert (first.seq, second.seq, first.keyed, second.keyed) == (1, 2, True, True)
    assert second.hash == entry_mac(audit_key(), first.hash, {**_fields(second), "seq": 2})
    assert head_now() == Head(2, second.pk, second.hash)
    result = audit_verify()
    assert (result.count, result.broken_at, result.problems) == (2, None, [])
    call_command("verify_audit_log")


@pytest.mark.django_db
def test_a_rolled_back_append_leaves_the_head(
    appended: Callable[..., AuditEntry], django_capture_on_commit_callbacks: Any
) -> None:
    kept = appended(actor=None, action="export")
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        audit_record(actor=None, action="import")
        raise RuntimeError
    assert head_now() == Head(1, kept.pk, kept.hash)
    assert audit_verify().ok


def tamper(sql: str, *params: Any) -> None:
    """Run SQL with the row triggers off, as the table owner (or a superuser) could."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(sql, list(params))
        cursor.execute("SET session_replication_role = DEFAULT")


@pytest.fixture
def three(appended: Callable[..., AuditEntry]) -> list[AuditEntry]:
    user = User.objects.create_user("ana")
    return [appended(actor=user, action=a, study="demo") for a in ("export", "import", "edit")]


@pytest.mark.django_db
def test_an_edited_entry_is_reported(postgres: None, three: list[AuditEntry]) -> None:
    victim = three[1]
    tamper("UPDATE audit_auditentry SET action = 'nothing' WHERE id = %s", victim.pk)
    assert audit_verify().broken_at == victim.pk
    with pytest.raises(CommandError, match=f"broken at entry {victim.pk}"):
        call_command("verify_audit_log")


@pytest.mark.django_db
def test_an_edit_with_every_later_hash_recomputed_is_reported(
    postgres: None, three: list[AuditEntry]
) -> None:
    """Without the key: recomputing as sha256, or as HMAC under a guessed key, both show."""
    victim = three[1]
    for keyed, hasher in (
        (False, lambda prev, f, seq: entry_hash(prev, f)),
        (True, lambda prev, f, seq: entry_mac(b"guessed", prev, {**f, "seq": seq})),
    ):
        prev = three[0].hash
        for entry in AuditEntry.objects.filter(pk__gte=victim.pk).order_by("id"):
            if entry.pk == victim.pk:
                entry.action = "nothing"
            digest = hasher(prev, _fields(entry), entry.seq)
            tamper(
                "UPDATE audit_auditentry SET action = %s, prev_hash = %s, hash = %s, keyed = %s "
                "WHERE id = %s",
                entry.action,
                prev,
                digest,
                keyed,
                entry.pk,
            )
            prev = digest
        assert audit_verify().broken_at == victim.pk


@pytest.mark.django_db
def test_deleted_last_entries_are_reported(postgres: None, three: list[AuditEntry]) -> None:
    tamper("DELETE FROM audit_auditentry WHERE id >= %s", three[1].pk)
    result = audit_verify()
    assert result.broken_at is None  # what is left chains...
    assert result.count == 1
    (problem,) = result.problems  # ...but the head names an entry that is gone
    assert f"names entry {three[2].pk} (number 3), which is not in the table" in problem
    with pytest.raises(CommandError, match="truncated or its last entries deleted"):
        call_command("verify_audit_log")


@pytest.mark.django_db
def test_an_emptied_table_is_reported(postgres: None, three: list[AuditEntry]) -> None:
    # The test database may be truncated (Django empties it so); production refuses it
    # (test_truncate_is_refused_outside_test_databases).
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the test's open transaction
        cursor.execute("TRUNCATE audit_auditentry")
    result = audit_verify()
    assert result.count == 0
    assert "0 entries now, 3 at the head" in result.problems[0]
    with pytest.raises(CommandError, match="0 entries now, 3 at the head"):
        call_command("verify_audit_log")


@pytest.mark.django_db
def test_a_missing_or_edited_head_is_reported(postgres: None, three: list[AuditEntry]) -> None:
    path = Path(settings.AUDIT_HEAD_FILE)
    body = json.loads(path.read_text())
    path.write_text(json.dumps({**body, "seq": 1, "entry_id": three[0].pk}))
    with pytest.raises(CommandError, match="was not written with this key"):
        call_command("verify_audit_log")
    path.unlink()
    with pytest.raises(CommandError, match="no head at"):
        call_command("verify_audit_log")
    # Anchoring once (after an upgrade, or a deliberate restore) writes it from the table.
    call_command("verify_audit_log", "--anchor")
    assert head_now() == Head(3, three[2].pk, three[2].hash)


@pytest.mark.django_db
def test_unkeyed_entries_from_before_the_upgrade_still_verify(
    postgres: None, appended: Callable[..., AuditEntry]
) -> None:
    """Entries written by the first version (sha256 links) stay valid; keyed ones follow."""
    legacy = []
    prev = GENESIS
    for seq, action in enumerate(("export", "import"), 1):
        entry = AuditEntry(at="2026-01-01T00:00:00+00:00", action=action, study="old", seq=seq)
        entry.prev_hash = prev
        entry.at = entry._meta.get_field("at").to_python(entry.at)
        entry.hash = entry_hash(prev, _fields(entry))
        entry.save(force_insert=True)
        legacy.append(entry)
        prev = entry.hash
    new = appended(actor=None, action="export", study="old")
    assert (new.seq, new.prev_hash, new.keyed) == (3, legacy[1].hash, True)
    assert audit_verify().ok
    # An unkeyed entry before the keyed one is rewritten, with its hash recomputed: the
    # keyed entry's MAC covers the old hash.
    forged = AuditEntry.objects.get(pk=legacy[1].pk)
    forged.action = "nothing"
    tamper(
        "UPDATE audit_auditentry SET action = 'nothing', hash = %s WHERE id = %s",
        entry_hash(legacy[0].hash, _fields(forged)),
        forged.pk,
    )
    assert audit_verify().broken_at == new.pk


@pytest.mark.django_db
def test_database_refuses_update_and_delete(postgres: None) -> None:
    entry = audit_record(actor=None, action="export", study="demo")
    for change in ({"action": "x"}, {"seq": 5}, {"keyed": False}):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            AuditEntry.objects.filter(pk=entry.pk).update(**change)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).delete()
    assert AuditEntry.objects.get(pk=entry.pk).action == "export"


@pytest.mark.django_db
def test_deleting_a_user_keeps_the_chain_valid(
    postgres: None, appended: Callable[..., AuditEntry]
) -> None:
    user = User.objects.create_user("bob")
    appended(actor=user, action="export", study="demo")
    user.delete()
    entry = AuditEntry.objects.get()
    assert entry.actor_id is None
    assert entry.actor_name == "bob"
    assert audit_verify().ok


# ------------------------------------------------- a database that is not a test database


def _server() -> str:
    s = connection.settings_dict
    user, host, port = s["USER"] or "postgres", s["HOST"] or "127.0.0.1", s["PORT"] or 5432
    return f"postgres://{user}@{host}:{port}"


@pytest.fixture
def production_like_db(postgres: None) -> Iterator[str]:
    """A database not named test_*, migrated (the audit app and what it needs) by manage.py."""
    name = connection.settings_dict["NAME"].removeprefix("test_") + "_audit_live"
    admin = _server().replace("postgres://", "postgresql://", 1) + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{_server()}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(url: str, head: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TEST_REDIS_URL")}
    env.update(
        DATABASE_URL=url,
        DB_POOL="0",
        AUDIT_HEAD_FILE=str(head),
        AUDIT_KEY="a-key-kept-off-the-database",
        DJANGO_SETTINGS_MODULE="belief_web.settings",
    )
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


APPEND = (
    "from audit.services import audit_record\n"
    "for action in ('export', 'import', 'edit'):\n"
    "    audit_record(actor=None, action=action, study='live')\n"
)


def test_truncate_is_refused_outside_test_databases(
    production_like_db: str, tmp_path: Path
) -> None:
    head = tmp_path / "head.json"
    done = manage(production_like_db, head, "migrate", "audit", "--no-input")
    assert done.returncode == 0, done.stderr
    assert manage(production_like_db, head, "shell", "-c", APPEND).returncode == 0
    assert (
        "audit log intact: 3 entries" in manage(production_like_db, head, "verify_audit_log").stdout
    )

    dsn = production_like_db.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="TRUNCATE refused"):
            conn.execute("TRUNCATE audit_auditentry")
        assert conn.execute("SELECT count(*) FROM audit_auditentry").fetchone() == (3,)
        # The owner may drop the trigger first: the head outside the database still tells.
        conn.execute("ALTER TABLE audit_auditentry DISABLE TRIGGER USER")
        conn.execute("TRUNCATE audit_auditentry")
    verify = manage(production_like_db, head, "verify_audit_log")
    assert verify.returncode == 1
    assert "0 entries now, 3 at the head" in verify.stderr
