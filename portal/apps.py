from django.apps import AppConfig


class PortalConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "portal"
    verbose_name = "Switchyard portal"

    def ready(self) -> None:
        from portal import receivers  # noqa: F401  (connects allauth's sign-in signals to the audit log)

        # Celery's worker signals (not domain logic): a worker process leaves a heartbeat while it runs.
        from portal.operations import heartbeats

        heartbeats.connect_worker_signals()
        # A leaver's API tokens are revoked with the rest of what they hold.
        from portal.api import leaver

        leaver.register()
