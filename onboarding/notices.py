"""What onboarding tells people: a step failed or waits for the client (to every manager)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from portal.notifications import holders_of, never_breaks_the_caller, notify, portal_url
from portal.people.permissions import MANAGER


@never_breaks_the_caller
def onboarding_step_notify(*, account: Any, step: Any, waiting_for_client: bool = False) -> None:
    """A step failed (or waits for the client): to every manager."""
    link = portal_url(reverse("onboarding:account_detail", args=[account.pk]))
    what = "waits for the client" if waiting_for_client else "failed"
    detail = step.last_error_message or (step.detail or {}).get("note", "")
    notify(
        event="onboarding.step", recipients=holders_of(MANAGER),
        dedupe_key=f"onboarding.{'waiting' if waiting_for_client else 'failed'}:{step.pk}:{step.attempts}",
        subject=f"{account.client.name} / {account.name}: {step.get_kind_display()} {what}",
        body=(f"The step \"{step.get_kind_display()}\" of {account.client.name} / {account.name} {what}."
              + (f"\n{detail}" if detail else "")
              + (f"\nAWS said: {step.last_error_code}" if step.last_error_code else "")
              + f"\n\n{link}"),
    )
