"""``Heartbeat`` moves from the reports app to the runtime, its table unchanged.

State only: the table ``reports_app_heartbeat`` stays as reports_app/0003 made
it (no rows copied, no lock taken); only Django's idea of which app owns the
model changes. reports_app/0004 drops it from the reports app's state.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("reports_app", "0003_heartbeat"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Heartbeat",
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
                        ("role", models.CharField(help_text='"worker" or "beat".', max_length=16)),
                        (
                            "name",
                            models.CharField(
                                help_text="The Celery node name or beat@host.", max_length=200
                            ),
                        ),
                        ("pid", models.PositiveIntegerField()),
                        ("seen_at", models.DateTimeField()),
                    ],
                    options={
                        "db_table": "reports_app_heartbeat",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("role", "name"), name="heartbeat_unique_name"
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
