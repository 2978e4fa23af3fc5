"""The Celery app: configured from the CELERY_* settings, tasks found in each app's tasks.py."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "belief_web.settings")

app = Celery("belief_web")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
