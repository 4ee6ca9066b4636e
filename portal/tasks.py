from celery import shared_task

from portal.audit import audit_chain_check_record


@shared_task
def audit_verify_chain_task() -> None:
    audit_chain_check_record()


# --- notifications (issue 18) ----------------------------------------------------------------------


# RuntimeError: portal.notifications.NoticeRetry (mail server or webhook down); backoff 30 s .. 10 min.
@shared_task(acks_late=True, autoretry_for=(RuntimeError,), retry_backoff=30, retry_backoff_max=600,
             retry_jitter=True, max_retries=8, soft_time_limit=60, time_limit=90)
def notice_deliver_task(notice_pk: int) -> str:
    """Send one notice (once; a sent one is left alone)."""
    from portal.notifications import notice_deliver

    notice = notice_deliver(notice_id=notice_pk)
    return notice.state if notice is not None else "gone"


@shared_task(acks_late=True, soft_time_limit=120, time_limit=180)
def notifications_sweep() -> int:
    """The periodic notices: grants expiring in 7 days and 1 day, overdue access reviews."""
    from portal.notification_sweeps import notices_sweep

    return notices_sweep()
