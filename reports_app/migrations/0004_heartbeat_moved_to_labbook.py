"""``Heartbeat`` now belongs to the runtime (labbook/0001); its table stays. State only."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("reports_app", "0003_heartbeat"),
        ("labbook", "0001_heartbeat_moved_here"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="Heartbeat")],
            database_operations=[],
        ),
    ]
