from django.db import migrations


class Migration(migrations.Migration):
    """The group fit moves to the scoring app (issue 15): its table is renamed, not copied.

    The rows stay where they are; scoring 0004 takes the model over in the migration state.
    """

    dependencies = [
        ("dashboard", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterModelTable(name="ModelFit", table="scoring_modelfit"),
            ],
            state_operations=[
                migrations.DeleteModel(name="ModelFit"),
            ],
        ),
    ]
