from celery import shared_task

from portal.chain_checks import audit_chain_check_record
from portal.notification_sweeps import notices_sweep
from portal.notifications.tasks import notice_deliver_task  # noqa: F401  (so the worker registers it)


@shared_task
def audit_verify_chain_task() -> None:
    audit_chain_check_record()


# --- notifications (issue 18) ----------------------------------------------------------------------


@shared_task(acks_late=True, soft_time_limit=120, time_limit=180)
def notifications_sweep() -> int:
    """The periodic notices: grants expiring in 7 days and 1 day, overdue access reviews."""
    return notices_sweep()
