from django.apps import AppConfig


class SwitchrolesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "switchroles"
    verbose_name = "Switch roles"
