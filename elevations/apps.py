from django.apps import AppConfig


class ElevationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "elevations"
    verbose_name = "Client contacts and elevations"

    def ready(self) -> None:
        from elevations import receivers  # noqa: F401 (connects the sign-in receiver)
