"""Where served runs of `import_city` start (`manage.py import_city --serve NAME`).

Prefect runs each scheduled flow run in a fresh process that loads the deployment's entrypoint
by file path. This file is that entrypoint, so it sets Django up before it imports the flow
(the flow module itself has no side effect at import).
"""

from __future__ import annotations

import os

import django
from prefect import serve as serve_deployments

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "city_wiki.settings")
django.setup()

from workflow.city_import import import_city  # noqa: E402  (Django must be set up first)

__all__ = ["import_city", "serve"]

ENTRYPOINT = "workflow/served.py:import_city"


def serve(name: str) -> None:
    """Register the deployment `name` on the Prefect server and run what it schedules."""
    deployment = import_city.to_deployment(name=name)
    deployment.entrypoint = ENTRYPOINT  # this file, not the flow module's
    serve_deployments(deployment)
