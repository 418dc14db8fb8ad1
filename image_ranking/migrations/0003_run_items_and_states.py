import django.db.models.deletion
from django.db import migrations, models


def origins_from_fallback_flag(apps, schema_editor):
    """uses_fallback becomes image_origin; a stored winner is the pipeline's, or a curator's
    when the ranking's reason says it was chosen by hand."""
    PoiRanking = apps.get_model("image_ranking", "PoiRanking")
    PoiRanking.objects.filter(uses_fallback=True).update(image_origin="fallback")
    updated = PoiRanking.objects.filter(uses_fallback=False, status="updated")
    updated.filter(reason__startswith="Chosen by").update(image_origin="curator")
    updated.exclude(reason__startswith="Chosen by").update(image_origin="pipeline")


def end_active_runs(apps, schema_editor):
    """Runs from before items existed cannot be tracked: they end here, marked as such."""
    RankingRun = apps.get_model("image_ranking", "RankingRun")
    RankingRun.objects.filter(status__in=["queued", "running"]).update(
        status="failed", message="Ended by the upgrade to per-POI run items."
    )


class Migration(migrations.Migration):
    dependencies = [
        ("cities", "0001_initial"),
        ("image_ranking", "0002_d_adopted_threshold"),
    ]

    operations = [
        migrations.CreateModel(
            name="RankablePoi",
            fields=[],
            options={
                "verbose_name": "point of interest",
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("cities.pointofinterest",),
        ),
        migrations.RemoveField(
            model_name="rankingrun",
            name="failed",
        ),
        migrations.RemoveField(
            model_name="rankingrun",
            name="flagged",
        ),
        migrations.RemoveField(
            model_name="rankingrun",
            name="processed",
        ),
        migrations.RemoveField(
            model_name="rankingrun",
            name="total",
        ),
        migrations.RemoveField(
            model_name="rankingrun",
            name="updated",
        ),
        migrations.AddField(
            model_name="candidate",
            name="rank_score",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="imagetrainingdata",
            name="model_name",
            field=models.CharField(blank=True, default="", max_length=20),
        ),
        migrations.AddField(
            model_name="poiranking",
            name="image_origin",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "Curated (not from image ranking)"),
                    ("pipeline", "Stored by the pipeline"),
                    ("curator", "Chosen by a curator"),
                    ("fallback", "Category fallback"),
                ],
                default="",
                max_length=10,
            ),
        ),
        migrations.RunPython(origins_from_fallback_flag, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name="poiranking",
            name="uses_fallback",
        ),
        migrations.RunPython(end_active_runs, migrations.RunPython.noop),
        migrations.AddField(
            model_name="rankingrun",
            name="active_key",
            field=models.CharField(blank=True, max_length=60, null=True, unique=True),
        ),
        migrations.AddField(
            model_name="rankingrun",
            name="kind",
            field=models.CharField(
                choices=[("batch", "Batch"), ("poi", "One POI")], default="batch", max_length=10
            ),
        ),
        migrations.AddField(
            model_name="rankingrun",
            name="swept_at",
            field=models.DateTimeField(
                blank=True, help_text="Last check for lost items.", null=True
            ),
        ),
        migrations.AlterField(
            model_name="rankingrun",
            name="status",
            field=models.CharField(
                choices=[
                    ("queued", "Queued"),
                    ("running", "Running"),
                    ("finished", "Finished"),
                    ("failed", "Failed"),
                    ("cancelled", "Cancelled"),
                ],
                default="queued",
                max_length=10,
            ),
        ),
        migrations.CreateModel(
            name="RankingRunItem",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "outcome",
                    models.CharField(
                        choices=[
                            ("pending", "Queued"),
                            ("running", "Running"),
                            ("updated", "Image stored"),
                            ("ranked", "Ranked (image kept)"),
                            ("flagged", "Flagged"),
                            ("failed", "Failed"),
                            ("skipped", "Skipped (another job had it)"),
                            ("cancelled", "Cancelled"),
                        ],
                        default="pending",
                        max_length=10,
                    ),
                ),
                ("reason", models.CharField(blank=True, default="", max_length=500)),
                (
                    "task_id",
                    models.CharField(
                        blank=True, default="", help_text="Django-Q task.", max_length=32
                    ),
                ),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "poi",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="run_items",
                        to="cities.pointofinterest",
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="items",
                        to="image_ranking.rankingrun",
                    ),
                ),
            ],
            options={
                "ordering": ["run", "pk"],
                "indexes": [
                    models.Index(fields=["run", "outcome"], name="image_ranki_run_id_e5a33d_idx"),
                    models.Index(fields=["finished_at"], name="image_ranki_finishe_f82ab8_idx"),
                ],
                "constraints": [
                    models.UniqueConstraint(fields=("run", "poi"), name="one_item_per_poi_and_run")
                ],
            },
        ),
    ]
