"""Several points per step: MetricPoint's primary key becomes (series, step, timestamp, seq).

Until now a step held one point. Existing points keep their rows and get
seq 0. The series summaries and rollup cells now name points by primary key
and carry the first point's value; the new columns are filled from the
points while every step still holds exactly one point (one index lookup per
row). Django cannot alter a composite primary key, so the table is changed
here: in place on PostgreSQL (a new column and a new primary key index), by
copying into a new table on SQLite (which cannot change a primary key).

Not reversible: once a step holds two points the old key cannot hold them.
"""

from django.db import migrations, models

POINTS = "tracking_metricpoint"


def _point_at(column: str, table: str, step: str, series: str = "series_id") -> str:
    """SQL: ``column`` of the point of ``table``'s row at ``step`` (one point per step)."""
    return (
        f'(SELECT p."{column}" FROM {POINTS} p'  # noqa: S608 - constants
        f" WHERE p.series_id = {table}.{series} AND p.step = {table}.{step})"
    )


def fill_series(apps, schema_editor):
    table = apps.get_model("tracking", "MetricSeries")._meta.db_table
    schema_editor.execute(
        f"UPDATE {table} SET"  # noqa: S608 - constants
        f" first_timestamp = {_point_at('timestamp', table, 'first_step', 'id')},"
        f" first_value = {_point_at('value', table, 'first_step', 'id')}"
        " WHERE first_step IS NOT NULL"
    )


def fill_rollups(apps, schema_editor):
    table = apps.get_model("tracking", "MetricRollup")._meta.db_table
    sets = []
    for which in ("min", "max", "nan"):
        step = f"{which}_step"
        sets.append(f"{which}_timestamp = {_point_at('timestamp', table, step)}")
        sets.append(f"{which}_seq = CASE WHEN {step} IS NULL THEN NULL ELSE 0 END")
    schema_editor.execute(f"UPDATE {table} SET {', '.join(sets)}")  # noqa: S608 - constants


def rekey_points(apps, schema_editor):
    """Add ``seq`` (0 for every existing point) and the new primary key."""
    model = apps.get_model("tracking", "MetricPoint")
    quote = schema_editor.quote_name
    table = model._meta.db_table
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            constraints = schema_editor.connection.introspection.get_constraints(cursor, table)
        (old_key,) = [name for name, info in constraints.items() if info["primary_key"]]
        schema_editor.execute(
            f"ALTER TABLE {quote(table)} ADD COLUMN seq integer NOT NULL DEFAULT 0"
        )
        schema_editor.execute(f"ALTER TABLE {quote(table)} ALTER COLUMN seq DROP DEFAULT")
        schema_editor.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(old_key)}")
        schema_editor.execute(
            f'ALTER TABLE {quote(table)} ADD PRIMARY KEY (series_id, step, "timestamp", seq)'
        )
        return
    old = f"old__{table}"
    schema_editor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(old)}")
    schema_editor.create_model(model)
    schema_editor.execute(
        f'INSERT INTO {quote(table)} (series_id, step, "timestamp", seq, value)'  # noqa: S608
        f' SELECT series_id, step, "timestamp", 0, value FROM {quote(old)} ORDER BY series_id, step'
    )
    schema_editor.execute(f"DROP TABLE {quote(old)}")


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0003_token_scope_and_expiry"),
    ]

    operations = [
        migrations.AddField(
            model_name="metricseries",
            name="first_timestamp",
            field=models.FloatField(null=True),
        ),
        migrations.AddField(
            model_name="metricseries",
            name="first_value",
            field=models.FloatField(null=True),
        ),
        migrations.AddField(
            model_name="metricseries",
            name="last_seq",
            field=models.IntegerField(default=0),
        ),
        migrations.AddField(
            model_name="metricrollup",
            name="min_timestamp",
            field=models.FloatField(null=True),
        ),
        migrations.AddField(
            model_name="metricrollup",
            name="min_seq",
            field=models.IntegerField(null=True),
        ),
        migrations.AddField(
            model_name="metricrollup",
            name="max_timestamp",
            field=models.FloatField(null=True),
        ),
        migrations.AddField(
            model_name="metricrollup",
            name="max_seq",
            field=models.IntegerField(null=True),
        ),
        migrations.AddField(
            model_name="metricrollup",
            name="nan_timestamp",
            field=models.FloatField(null=True),
        ),
        migrations.AddField(
            model_name="metricrollup",
            name="nan_seq",
            field=models.IntegerField(null=True),
        ),
        migrations.RunPython(fill_series, elidable=False),
        migrations.RunPython(fill_rollups, elidable=False),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="metricpoint",
                    name="seq",
                    field=models.IntegerField(default=0),
                ),
                migrations.AlterField(
                    model_name="metricpoint",
                    name="pk",
                    field=models.CompositePrimaryKey(
                        "series",
                        "step",
                        "timestamp",
                        "seq",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
            ],
        ),
        migrations.RunPython(rekey_points, elidable=False),
    ]
