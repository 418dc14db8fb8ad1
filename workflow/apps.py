from django.apps import AppConfig


class WorkflowConfig(AppConfig):
    """The Prefect flow `import_city` and its command line (`manage.py import_city`)."""

    name = "workflow"
    verbose_name = "City import workflow"
