from django.apps import AppConfig


class OnboardingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "onboarding"
    verbose_name = "Onboarding"

    def ready(self) -> None:
        # The drift page (switchroles) lists the accounts whose root user holds a credential, and
        # how far the daily root-posture check has got.
        from onboarding.root_selectors import accounts_with_root_credentials, root_posture_progress
        from switchroles.drift_views import drift_page_findings_register

        drift_page_findings_register("root_findings", lambda: list(accounts_with_root_credentials()))
        drift_page_findings_register("root_progress", root_posture_progress)
