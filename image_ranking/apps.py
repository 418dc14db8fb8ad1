from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ImageRankingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "image_ranking"
    verbose_name = "Image ranking"

    def ready(self) -> None:
        # Imported here, as Django asks: they use models, which load after the app configs.
        from django_q.signals import post_spawn

        from image_ranking import checks  # noqa: F401 (registers the system checks)
        from image_ranking.runs import schedule

        post_migrate.connect(schedule.ensure_sweep_schedule, sender=self)
        # A worker that starts (a cluster's start-up, or a respawn after a worker was
        # killed) ends what its dead predecessors left open.
        post_spawn.connect(schedule.sweep_on_spawn, dispatch_uid="image_ranking_sweep_on_spawn")
