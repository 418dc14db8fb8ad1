from django.apps import AppConfig


class ImageRankingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "image_ranking"
    verbose_name = "Image ranking"
