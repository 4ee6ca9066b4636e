"""Sending a notice (enqueued by ``portal.notifications.notify`` after commit)."""

from __future__ import annotations

from celery import shared_task

from portal.notifications import notice_deliver


# RuntimeError: portal.notifications.NoticeRetry (mail server or webhook down); backoff 30 s .. 10 min.
# The task keeps the name it had in portal/tasks.py, so messages queued before a deploy still run.
@shared_task(name="portal.tasks.notice_deliver_task", acks_late=True, autoretry_for=(RuntimeError,),
             retry_backoff=30, retry_backoff_max=600, retry_jitter=True, max_retries=8, soft_time_limit=60,
             time_limit=90)
def notice_deliver_task(notice_pk: int) -> str:
    """Send one notice (once; a sent one is left alone)."""
    notice = notice_deliver(notice_id=notice_pk)
    return notice.state if notice is not None else "gone"
