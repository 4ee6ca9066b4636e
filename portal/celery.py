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
    # Revocation and expiry must reach AWS within a minute; unchanged principals cost no AWS call.
    "enforcement-sync": {
        "task": "switchroles.tasks.enforcement_sync",
        "schedule": 60.0,
        "kwargs": {"reason": "schedule"},
        "options": {"expires": 55},
    },
    "enforcement-drift-check": {
        "task": "switchroles.tasks.enforcement_drift_check",
        "schedule": crontab(minute="*/10"),
    },
}
