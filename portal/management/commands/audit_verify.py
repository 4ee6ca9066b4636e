from typing import Any

from django.core.management.base import BaseCommand, CommandError

from portal.chain_checks import audit_chain_check_record


class Command(BaseCommand):
    help = "Verify the audit log's hash chain. Exits 0 when intact; otherwise names the first bad event."

    def handle(self, *args: Any, **options: Any) -> None:
        check = audit_chain_check_record()
        if not check.intact:
            raise CommandError(f"Audit chain BROKEN at event #{check.first_bad_sequence}: {check.problem}")
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {check.events_checked} events verified."))
