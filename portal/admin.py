from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpRequest

from portal.models import AuditChainCheck, AuditEvent, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    fieldsets = (*DjangoUserAdmin.fieldsets, ("Switchyard", {"fields": ("iam_username",)}))  # type: ignore[misc]
    list_display = ("username", "email", "first_name", "last_name", "iam_username", "is_active")


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("sequence", "occurred_at", "actor_label", "action", "target_type", "target_label", "client_ip")
    list_filter = ("action", "target_type")
    search_fields = ("actor_label", "target_label", "action")


@admin.register(AuditChainCheck)
class AuditChainCheckAdmin(ReadOnlyAdmin):
    list_display = ("checked_at", "intact", "events_checked", "first_bad_sequence", "problem")
