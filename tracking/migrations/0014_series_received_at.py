from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def backfill(apps, schema_editor):
    """Series stored before ``received_at`` existed: their run's last contact is the best
    guess of their last point, so a long run is not taken for a hung one after upgrading."""
    series = apps.get_model("tracking", "MetricSeries")
    run = apps.get_model("tracking", "Run")
    last_seen = run.objects.filter(pk=OuterRef("run_id")).values("last_seen_at")[:1]
    series.objects.filter(received_at=None).update(received_at=Subquery(last_seen))


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0013_media_text"),
    ]

    operations = [
        migrations.AddField(
            model_name="metricseries",
            name="received_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
