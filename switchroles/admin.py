"""The Django admin shows the directory's rows read-only: every change goes through the portal's
pages and services, which audit it and rewrite the main-account IAM policies."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from portal.web.admin import ReadOnlyAdmin
from switchroles.models import DriftCheck, DriftFinding, EnforcedPrincipal, Grant, LinkUse, Team, TeamMembership


@admin.register(Team)
class TeamAdmin(ReadOnlyAdmin):
    list_display = ("name", "iam_group_name", "created_at")
    search_fields = ("name", "iam_group_name")


@admin.register(TeamMembership)
class TeamMembershipAdmin(ReadOnlyAdmin):
    list_display = ("team", "person", "added_at", "added_by", "removed_at", "removed_by")
    list_filter = ("team",)


@admin.register(Grant)
class GrantAdmin(ReadOnlyAdmin):
    list_display = ("pk", "team", "person", "client", "account", "granted_by", "granted_at", "expires_at", "revoked_at")
    list_filter = ("team",)
    search_fields = ("reason", "team__name", "person__username", "client__name")


@admin.register(LinkUse)
class LinkUseAdmin(ReadOnlyAdmin):
    list_display = ("used_at", "person", "account_role", "client_ip")
    search_fields = ("person__username",)


@admin.register(EnforcedPrincipal)
class EnforcedPrincipalAdmin(ReadOnlyAdmin):
    list_display = ("principal_type", "principal_name", "policy_name_prefix", "role_count", "applied_at",
                    "needs_apply", "last_error")


class DriftFindingInline(admin.TabularInline[DriftFinding, DriftCheck]):
    model = DriftFinding
    extra = 0
    can_delete = False
    fields = ("principal_type", "principal_name", "missing_arns", "extra_arns", "missing_members",
              "extra_members", "problem")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DriftCheck)
class DriftCheckAdmin(ReadOnlyAdmin):
    list_display = ("checked_at", "principals_checked", "drifted", "error")
    inlines = [DriftFindingInline]
