from django.apps import AppConfig


class OperationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "operations"
    verbose_name = "Operations (heartbeats and AWS capacity)"

    def ready(self) -> None:
        # Celery's worker signals (not domain logic): a worker process leaves a heartbeat while it runs.
        from operations import heartbeats

        heartbeats.connect_worker_signals()
