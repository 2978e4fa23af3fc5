"""A keyed chain with sequence numbers, and TRUNCATE refused by the database.

Existing entries keep their unkeyed sha256 links (`keyed` false) and get their sequence
numbers in id order; the first entry appended after this migration is keyed and its MAC
covers the last of them, so from then on none can be rewritten without the key.
`verify_audit_log --anchor` writes the first head (docs/audit.md).

TRUNCATE bypasses row triggers, so a statement trigger refuses it, except in Django's test
databases (named test_*), which Django's test runner empties with TRUNCATE between tests.
"""

from django.db import migrations, models

ROW_TRIGGER = """
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit entries are append-only';
    END IF;
    IF (NEW.id, NEW.at, NEW.actor_name, NEW.action, NEW.study, NEW.target, NEW.detail::text,
        NEW.prev_hash, NEW.hash, NEW.seq, NEW.keyed)
       IS DISTINCT FROM
       (OLD.id, OLD.at, OLD.actor_name, OLD.action, OLD.study, OLD.target, OLD.detail::text,
        OLD.prev_hash, OLD.hash, OLD.seq, OLD.keyed) THEN
        RAISE EXCEPTION 'audit entries are append-only';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_auditentry
    FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only();
CREATE OR REPLACE FUNCTION audit_entry_no_truncate() RETURNS trigger AS $$
BEGIN
    IF left(current_database(), 5) = 'test_' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit entries are append-only (TRUNCATE refused)';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_entry_no_truncate BEFORE TRUNCATE ON audit_auditentry
    FOR EACH STATEMENT EXECUTE FUNCTION audit_entry_no_truncate();
"""
OLD_ROW_TRIGGER = """
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit entries are append-only';
    END IF;
    IF (NEW.id, NEW.at, NEW.actor_name, NEW.action, NEW.study, NEW.target, NEW.detail::text,
        NEW.prev_hash, NEW.hash)
       IS DISTINCT FROM
       (OLD.id, OLD.at, OLD.actor_name, OLD.action, OLD.study, OLD.target, OLD.detail::text,
        OLD.prev_hash, OLD.hash) THEN
        RAISE EXCEPTION 'audit entries are append-only';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_auditentry
    FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only();
"""
DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_auditentry;
DROP TRIGGER IF EXISTS audit_entry_no_truncate ON audit_auditentry;
DROP FUNCTION IF EXISTS audit_entry_no_truncate();
"""


def drop_triggers(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_TRIGGERS)


def number_entries(apps, schema_editor):  # type: ignore[no-untyped-def]
    entry = apps.get_model("audit", "AuditEntry")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "UPDATE audit_auditentry SET seq = n.seq FROM "
            "(SELECT id, row_number() OVER (ORDER BY id) AS seq FROM audit_auditentry) n "
            "WHERE audit_auditentry.id = n.id"
        )
        return
    for seq, pk in enumerate(entry.objects.order_by("id").values_list("id", flat=True), 1):
        entry.objects.filter(pk=pk).update(seq=seq)


def create_triggers(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ROW_TRIGGER)


def restore_old_trigger(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(OLD_ROW_TRIGGER)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only")]
    operations = [
        migrations.RunPython(drop_triggers, restore_old_trigger),
        migrations.AddField(
            model_name="auditentry",
            name="keyed",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="auditentry",
            name="seq",
            field=models.BigIntegerField(null=True),
        ),
        migrations.RunPython(number_entries, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="auditentry",
            name="seq",
            field=models.BigIntegerField(unique=True),
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
