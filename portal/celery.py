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
    # Re-drives onboarding steps whose wait is over or whose worker died (lease ran out).
    "onboarding-reconcile": {"task": "onboarding.tasks.reconcile_onboarding", "schedule": 60.0},
    # Revocation and expiry must reach AWS within a minute; unchanged principals cost no AWS call.
    # Every 30 s: a grant expiring just after one run must not wait a whole minute for the next.
    "enforcement-sync": {
        "task": "switchroles.tasks.enforcement_sync",
        "schedule": 30.0,
        "kwargs": {"reason": "schedule", "retry_if_busy": False},
        "options": {"expires": 25},
    },
    "enforcement-drift-check": {
        "task": "switchroles.tasks.enforcement_drift_check",
        "schedule": crontab(minute="*/10"),
    },
    # Expired grants left the directory at once; this records each expiry once and lets AWS follow.
    "grant-expiries": {"task": "switchroles.tasks.record_grant_expiries", "schedule": 30.0,
                       "options": {"expires": 25}},
    # The full drift check: main-account policies and every active account's roles (AssumeRole each).
    "drift-check": {"task": "switchroles.tasks.drift_check", "schedule": crontab(minute=23)},
    # Re-drives template roll-outs whose message was lost or whose worker died.
    "rollout-reconcile": {"task": "switchroles.tasks.rollout_reconcile", "schedule": 60.0,
                          "options": {"expires": 55}},
    # Cost Explorer charges per request: four times a day (this month, last month until final, history).
    "billing-fetch": {"task": "billing.tasks.billing_fetch_due", "schedule": crontab(minute=17, hour="*/6"),
                      "options": {"expires": 3600}},
    # Leavers whose AWS removal is still pending (lost message, killed worker) are sent again.
    "leaver-reconcile": {"task": "switchroles.tasks.leaver_reconcile", "schedule": 60.0,
                         "options": {"expires": 55}},
    # Grants expiring in 7 days / 1 day, overdue reviews: each notice once (unique dedupe keys).
    "notifications-sweep": {"task": "portal.tasks.notifications_sweep", "schedule": crontab(minute="*/15"),
                            "options": {"expires": 600}},
    # Root posture of every account: each looked at once a day (sts:AssumeRoot, audit task policy); new
    # accounts within ten minutes.
    "root-posture-check": {"task": "onboarding.tasks.check_root_posture_due", "schedule": 600.0,
                           "options": {"expires": 550}},
    # Re-drives the drift check's per-account parts whose message was lost or whose worker died.
    "drift-run-reconcile": {"task": "switchroles.tasks.drift_run_reconcile", "schedule": 60.0,
                            "options": {"expires": 55}},
    # What AWS really allows from the main account, next to the grants (one authorization-details walk).
    "effective-access-check": {"task": "switchroles.tasks.effective_access_check", "schedule": crontab(minute=53)},
    # Elevations: unanswered requests close, expired ones are marked (their grants end by grant-expiries).
    "elevations-expire": {"task": "elevations.tasks.elevations_expire", "schedule": 60.0, "options": {"expires": 55}},
}
