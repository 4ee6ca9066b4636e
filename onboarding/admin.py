"""Read-only admin views: every change to clients and accounts goes through the portal's pages and
services, which write the audit log; the admin only looks."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from onboarding.models import AwsAccount, Client, OnboardingStep


class ReadOnlyAdmin(admin.ModelAdmin[Any]):  # for the models of this app
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StepInline(admin.TabularInline[OnboardingStep, AwsAccount]):
    model = OnboardingStep
    fields = ("position", "kind", "status", "attempts", "lease_expires_at", "next_run_at", "last_error_code")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Client)
class ClientAdmin(ReadOnlyAdmin):
    list_display = ("name", "slug", "state", "created_at")
    search_fields = ("name", "slug")


@admin.register(AwsAccount)
class AwsAccountAdmin(ReadOnlyAdmin):
    list_display = ("name", "client", "account_id", "origin", "state", "updated_at")
    list_filter = ("state", "origin")
    search_fields = ("name", "account_id", "root_email", "client__name")
    inlines = [StepInline]
