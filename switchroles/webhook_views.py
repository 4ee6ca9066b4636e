"""A team's Slack or Teams incoming webhook for notices (managers; the URL is a secret)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from portal.people.http import AuthenticatedRequest
from portal.people.permissions import MANAGER, capability_required
from portal.web.form_errors import service_errors_to_form
from portal.web.reauth import reauthentication_required
from switchroles import services
from switchroles.forms import TeamWebhookForm
from switchroles.models import Team


@never_cache
@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
@reauthentication_required
def team_webhook(request: AuthenticatedRequest, team_id: int) -> HttpResponse:
    team = get_object_or_404(Team, pk=team_id)
    form = TeamWebhookForm(request.POST or None, initial={"notification_webhook_url": team.notification_webhook_url})
    if request.method == "POST" and form.is_valid():
        try:
            services.team_webhook_set(team=team, url=form.cleaned_data["notification_webhook_url"] or "",
                                      changed_by=request.user, request=request)
        except ValidationError as exc:
            service_errors_to_form(form, exc)
        else:
            messages.success(request, f"Team {team.name}'s webhook saved.")
            return redirect("switchroles:team_detail", team_id=team.pk)
    return render(request, "switchroles/team_webhook.html", {"team": team, "form": form})
