from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpRequest

from portal.audit import audit_record
from portal.audit.models import AuditChainCheck, AuditEvent
from portal.people.models import User
from portal.web.admin import ReadOnlyAdmin


@admin.register(User)
class UserAdmin(DjangoUserAdmin[User]):
    """What decides access (IAM user name, capabilities, active or not) is read-only here: it
    changes through the People pages (person edit, the leaver action), which audit it and show
    what it gains and loses. Whatever the admin still edits is audited (``person.admin_changed``)."""

    fieldsets = (*DjangoUserAdmin.fieldsets, ("Switchyard", {"fields": ("iam_username",)}))  # type: ignore[misc]
    list_display = ("username", "email", "first_name", "last_name", "iam_username", "is_active")
    readonly_fields = ("iam_username", "groups", "user_permissions", "is_active", "is_superuser")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        changed = sorted(name for name in form.changed_data if name not in ("password", "password1", "password2"))
        if changed or "password" in form.changed_data or not change:
            audit_record(
                action="person.admin_changed" if change else "person.admin_created", target=obj, request=request,
                details={"fields": changed, "password_changed": bool({"password", "password1"}
                                                                     & set(form.changed_data))},
            )


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("sequence", "occurred_at", "actor_label", "action", "target_type", "target_label", "client_ip")
    list_filter = ("action", "target_type")
    search_fields = ("actor_label", "target_label", "action")


@admin.register(AuditChainCheck)
class AuditChainCheckAdmin(ReadOnlyAdmin):
    list_display = ("checked_at", "intact", "events_checked", "first_bad_sequence", "problem")
