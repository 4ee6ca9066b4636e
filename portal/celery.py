"""The Celery app. Safe defaults live in settings (acks late, reject on worker loss, prefetch 1,
time limits, JSON only); the periodic schedule is declared here, in one place."""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("switchyard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    "audit-verify-chain": {"task": "portal.tasks.audit_verify_chain_task", "schedule": crontab(minute=7)},
}
