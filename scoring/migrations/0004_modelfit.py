import django.db.models.deletion
from django.db import migrations, models


def _content_type_relabel(apps, source, target):  # type: ignore[no-untyped-def]
    # The model's content type (and the permissions that point at it) follows the model,
    # rather than leaving a stale one behind. A content type already made for the target
    # (post_migrate of a database migrated on another branch) has no rows of its own to keep.
    content_type = apps.get_model("contenttypes", "ContentType")
    moving = content_type.objects.filter(app_label=source, model="modelfit")
    if moving.exists():
        content_type.objects.filter(app_label=target, model="modelfit").delete()
        moving.update(app_label=target)


def content_type_move(apps, schema_editor):  # type: ignore[no-untyped-def]
    _content_type_relabel(apps, "dashboard", "scoring")


def content_type_back(apps, schema_editor):  # type: ignore[no-untyped-def]
    _content_type_relabel(apps, "scoring", "dashboard")


class Migration(migrations.Migration):
    """The group fit, moved from the dashboard app: state only, the table is already ours.

    dashboard 0002 renamed dashboard_modelfit to scoring_modelfit with its rows.
    """

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("dashboard", "0002_modelfit_to_scoring"),
        ("scoring", "0003_rescore"),
        ("trials", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ModelFit",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("fitting", "fitting"),
                                    ("done", "done"),
                                    ("failed", "failed"),
                                ],
                                default="fitting",
                                max_length=8,
                            ),
                        ),
                        ("fingerprint", models.CharField(blank=True, max_length=100)),
                        ("pending_fingerprint", models.CharField(blank=True, max_length=100)),
                        ("n_sessions", models.PositiveIntegerField(default=0)),
                        ("result", models.JSONField(blank=True, default=dict)),
                        ("requested_at", models.DateTimeField(blank=True, null=True)),
                        ("fitted_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "study",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="trials.study",
                            ),
                        ),
                    ],
                    options={
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(("status__in", ["fitting", "done", "failed"])),
                                name="modelfit_status_valid",
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_move, content_type_back),
    ]
