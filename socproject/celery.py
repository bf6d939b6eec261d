"""The Celery app: workers run the analysis agents (agents/tasks.py), beat the generator."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "socproject.settings")

app = Celery("socproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
