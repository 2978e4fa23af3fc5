"""Study title and description per language; existing titles stay as they are (the default)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("trials", "0008_event_list_owner"),
    ]

    operations = [
        migrations.AddField(
            model_name="study",
            name="title_texts",
            field=models.JSONField(blank=True, default=dict, help_text="{language: title}"),
        ),
        migrations.AddField(
            model_name="study",
            name="description_texts",
            field=models.JSONField(blank=True, default=dict, help_text="{language: description}"),
        ),
    ]
