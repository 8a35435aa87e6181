"""``Run.project_index``: a run's place in its project, which gives it one colour everywhere.

Existing runs are numbered in the order they were created (then by id), per
project, as new runs are numbered at creation. The column is added with a
default, then filled a thousand rows per statement.
"""

from django.db import migrations, models


def number_runs(apps, schema_editor):
    Run = apps.get_model("tracking", "Run")
    batch = []
    project, index = None, 0
    ordered = Run.objects.order_by("project_id", "created_at", "pk").only("pk", "project_id")
    for run in ordered.iterator(chunk_size=2000):
        if run.project_id != project:
            project, index = run.project_id, 0
        run.project_index = index
        index += 1
        batch.append(run)
        if len(batch) == 1000:
            Run.objects.bulk_update(batch, ["project_index"])
            batch = []
    if batch:
        Run.objects.bulk_update(batch, ["project_index"])


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0006_text_limits_on_fields"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="project_index",
            field=models.PositiveIntegerField(
                default=0,
                help_text="How many runs its project had before it: its colour on every chart"
                " and table (kernel.charts.run_color), the same on every page and for ever.",
            ),
        ),
        migrations.RunPython(number_runs, migrations.RunPython.noop),
    ]
