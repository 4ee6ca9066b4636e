from celery import shared_task

from portal.audit import audit_chain_check_record


@shared_task
def audit_verify_chain_task() -> None:
    audit_chain_check_record()
