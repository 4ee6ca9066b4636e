"""Role templates, the roles provisioned from them, teams, and grants.

A switch-role link grants nothing by itself: the same ``Grant`` rows that decide what a person
sees in the directory decide the main-account IAM policies that let them assume a role.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from portal.operations.models import FanOutPart, FanOutRun
from portal.people.models import IAM_NAME_VALIDATOR
from switchroles.links import switch_role_url

ROLE_NAME_VALIDATOR = IAM_NAME_VALIDATOR


class RoleTemplate(models.Model):
    """A permission tier: what a cross-account role looks like in every account it is provisioned in."""

    class Tier(models.TextChoices):
        ADMINISTRATOR = "administrator", "Administrator"
        ENGINEER = "engineer", "Engineer"
        ONCALL = "oncall", "On-call support"
        CUSTOM = "custom", "Custom policy"

    name = models.CharField(max_length=64, unique=True)
    tier = models.CharField(max_length=16, choices=Tier.choices)
    role_name = models.CharField(max_length=64, unique=True, validators=[ROLE_NAME_VALIDATOR])
    description = models.TextField(max_length=1000, blank=True)
    managed_policy_arns = models.JSONField(default=list, blank=True,
                                           help_text="AWS managed policies attached to the role.")
    custom_policy = models.JSONField(null=True, blank=True, help_text="An inline policy document.")
    require_mfa = models.BooleanField(default=True)
    max_session_seconds = models.PositiveIntegerField(
        default=3600, validators=[MinValueValidator(3600), MaxValueValidator(43200)]
    )
    region = models.CharField(
        max_length=32, blank=True, validators=[RegexValidator(r"\A[a-z]{2}(-[a-z]+)+-[0-9]\Z",
                                                              "Enter an AWS Region code such as eu-west-1.")],
        help_text="The Region the console and CLI open in for this role (blank: the engineer's own).",
    )
    console_color = models.CharField(max_length=6, help_text="A colour of the console's switch-role palette.")
    is_active = models.BooleanField(default=True)
    revision = models.PositiveIntegerField(default=1, help_text="Bumped on every change to roll it out.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.name


class AccountRole(models.Model):
    """A role of one template in one account: the thing a switch-role link points at."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        PROVISIONED = "provisioned", "Provisioned"
        ACTIVE = "active", "Active"
        CONFLICT = "conflict", "Conflicts with an existing role"
        FAILED = "failed", "Failed"
        REMOVED = "removed", "Removed"

    account = models.ForeignKey("onboarding.AwsAccount", on_delete=models.PROTECT, related_name="roles")
    template = models.ForeignKey(RoleTemplate, on_delete=models.PROTECT, related_name="account_roles")
    role_path = models.CharField(max_length=512, help_text="e.g. /switchyard/acme/")
    role_name = models.CharField(max_length=64, validators=[ROLE_NAME_VALIDATOR])
    arn = models.CharField(max_length=2048, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING, db_index=True)
    display_name = models.CharField(max_length=64)
    color = models.CharField(max_length=6)
    provisioned_revision = models.PositiveIntegerField(default=0)
    activated_at = models.DateTimeField(null=True, blank=True, help_text="When its link was published.")
    removed_at = models.DateTimeField(null=True, blank=True, help_text="When it was deleted or handed back.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "template"]
        constraints = [
            models.UniqueConstraint(fields=["account", "template"], name="one_role_per_template_per_account"),
        ]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.role_path}{self.role_name})"

    @property
    def switch_role_url(self) -> str:
        """The console link, built only from validated fields (raises ValueError otherwise)."""
        return switch_role_url(
            account_id=self.account.account_id or "",
            role_path=self.role_path,
            role_name=self.role_name,
            display_name=self.display_name,
            color=self.color,
        )


class Team(models.Model):
    """A group of people; one IAM group in the main account."""

    name = models.CharField(max_length=100, unique=True)
    iam_group_name = models.CharField(max_length=128, unique=True, validators=[ROLE_NAME_VALIDATOR])
    members = models.ManyToManyField(  # type: ignore[var-annotated]
        settings.AUTH_USER_MODEL, through="TeamMembership", related_name="teams", blank=True,
        through_fields=("team", "person"),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    notification_webhook_url = models.URLField(
        "Slack or Teams incoming webhook", max_length=500, blank=True,
        help_text="Optional: notices for this team are also posted there (a secret: shown to managers only).",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TeamMembership(models.Model):
    """A person's time in a team. Kept after they leave (``removed_at``), so access at any past
    moment can be reconstructed. At most one open membership per person and team."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="memberships")
    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="memberships")
    added_at = models.DateTimeField()
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")

    class Meta:
        ordering = ["team", "added_at"]
        constraints = [
            models.UniqueConstraint(fields=["team", "person"], condition=models.Q(removed_at__isnull=True),
                                    name="one_open_membership"),
        ]

    def __str__(self) -> str:
        return f"{self.person} in {self.team}"


class Grant(models.Model):
    """Who (a team or a person) may use which roles (tiers) of which client or account, why, and
    until when. Never deleted: revoked."""

    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="grants")
    person = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="personal_grants")
    client = models.ForeignKey("onboarding.Client", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="grants")
    account = models.ForeignKey("onboarding.AwsAccount", null=True, blank=True, on_delete=models.PROTECT,
                                related_name="grants")
    templates = models.ManyToManyField(RoleTemplate, related_name="grants")
    reason = models.TextField(max_length=1000)
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    granted_at = models.DateTimeField(db_index=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    revoked_at = models.DateTimeField(null=True, blank=True, db_index=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    revoke_reason = models.TextField(max_length=1000, blank=True)
    expiry_recorded_at = models.DateTimeField(
        null=True, blank=True, help_text="When Switchyard recorded its expiry (audit event grant.expired), once."
    )

    class Meta:
        ordering = ["-granted_at"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(team__isnull=False, person__isnull=True) | Q(team__isnull=True, person__isnull=False)),
                name="grant_to_team_xor_person",
            ),
            models.CheckConstraint(
                condition=(Q(client__isnull=False, account__isnull=True)
                           | Q(client__isnull=True, account__isnull=False)),
                name="grant_on_client_xor_account",
            ),
        ]

    def __str__(self) -> str:
        who = self.team or self.person
        what = self.client or self.account
        return f"{who} → {what}"


class LinkUse(models.Model):
    """A click-through on a switch-role link (also written as an audit event)."""

    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="link_uses")
    account_role = models.ForeignKey(AccountRole, on_delete=models.PROTECT, related_name="uses")
    grant = models.ForeignKey(Grant, null=True, on_delete=models.PROTECT, related_name="uses")
    used_at = models.DateTimeField(db_index=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-used_at"]
        indexes = [models.Index(fields=["person", "-used_at"])]

    def __str__(self) -> str:
        return f"{self.person} used {self.account_role} at {self.used_at:%Y-%m-%d %H:%M}"


class Favourite(models.Model):
    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="favourites")
    account_role = models.ForeignKey(AccountRole, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["person", "account_role"], name="one_favourite")]

    def __str__(self) -> str:
        return f"{self.person} ★ {self.account_role}"


class EnforcedPrincipal(models.Model):
    """A main-account IAM group (a team's) or IAM user (a person's, for personal grants) whose
    ``sts:AssumeRole`` policies Switchyard writes, and what it last told AWS.

    ``applied_documents`` lets the every-minute sync skip principals whose policies have not
    changed; a drift check that finds AWS saying something else sets ``needs_apply``.
    """

    class Type(models.TextChoices):
        GROUP = "group", "IAM group"
        USER = "user", "IAM user"

    principal_type = models.CharField(max_length=8, choices=Type.choices)
    team = models.OneToOneField(Team, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="enforced_principal")
    person = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="enforced_principal")
    principal_name = models.CharField(max_length=128, help_text="The IAM group or user name last written to.")
    policy_name_prefix = models.CharField(max_length=120, unique=True)
    applied_documents = models.JSONField(default=list, blank=True)
    applied_members = models.JSONField(default=list, blank=True, help_text="IAM users put in the group.")
    role_count = models.PositiveIntegerField(default=0, help_text="Role ARNs the applied policies allow.")
    applied_at = models.DateTimeField(null=True, blank=True)
    needs_apply = models.BooleanField(default=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["principal_type", "principal_name"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(principal_type="group", team__isnull=False, person__isnull=True)
                           | Q(principal_type="user", team__isnull=True, person__isnull=False)),
                name="enforced_group_is_team_user_is_person",
            ),
        ]

    def __str__(self) -> str:
        return f"IAM {self.principal_type} {self.principal_name}"


class DriftCheck(models.Model):
    """One comparison of what AWS says (the main-account policies and group members) with what
    the portal's grants say."""

    checked_at = models.DateTimeField(db_index=True)
    principals_checked = models.PositiveIntegerField(default=0)
    drifted = models.PositiveIntegerField(default=0, help_text="Principals whose AWS state differs.")
    error = models.TextField(blank=True, help_text="Why the check could not finish, if it did not.")
    roles_checked = models.PositiveIntegerField(
        null=True, blank=True, help_text="Account roles compared with their templates; empty when only the main "
        "account was checked (switchroles.drift)."
    )

    class Meta:
        ordering = ["-checked_at", "-pk"]

    def __str__(self) -> str:
        return f"drift check at {self.checked_at:%Y-%m-%d %H:%M}: {self.drifted} drifted"


class DriftFinding(models.Model):
    """One principal whose AWS state differs from the portal's: the role ARNs AWS lacks (missing)
    or allows beyond the grants (extra), and for a team's group, the members likewise."""

    check_run = models.ForeignKey(DriftCheck, on_delete=models.CASCADE, related_name="findings")
    principal_type = models.CharField(max_length=8, choices=EnforcedPrincipal.Type.choices)
    principal_name = models.CharField(max_length=128)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    person = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="+")
    missing_arns = models.JSONField(default=list, blank=True)
    extra_arns = models.JSONField(default=list, blank=True)
    missing_members = models.JSONField(default=list, blank=True)
    extra_members = models.JSONField(default=list, blank=True)
    problem = models.TextField(blank=True, help_text="e.g. a hand-edited policy that is not in Switchyard's form.")

    class Meta:
        ordering = ["principal_type", "principal_name"]

    def __str__(self) -> str:
        return f"drift on IAM {self.principal_type} {self.principal_name}"


class RoleDriftFinding(models.Model):
    """A role in a member account that differs from what the portal says (``switchroles.drift``):
    an active account role that is gone or changed, a role marked as Switchyard's that the portal
    does not know, or an account Switchyard could not reach. ``repair_*`` follows a manager's repair."""

    class Kind(models.TextChoices):
        MISSING = "missing", "The role is gone"
        DIFFERENT = "different", "The role differs from its template"
        UNKNOWN = "unknown", "A Switchyard role the portal does not know"
        UNREACHABLE = "unreachable", "Switchyard could not look into the account"

    class Repair(models.TextChoices):
        NONE = "", "Not repaired"
        REQUESTED = "requested", "Repair on its way"
        REPAIRED = "repaired", "Repaired"
        FAILED = "failed", "Repair failed"

    check_run = models.ForeignKey(DriftCheck, on_delete=models.CASCADE, related_name="role_findings")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    account = models.ForeignKey("onboarding.AwsAccount", on_delete=models.PROTECT, related_name="+")
    account_role = models.ForeignKey(AccountRole, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    role_path = models.CharField(max_length=512, blank=True)
    role_name = models.CharField(max_length=64, blank=True)
    role_arn = models.CharField(max_length=2048, blank=True)
    differences = models.JSONField(default=list, blank=True, help_text="What differs, in plain words.")
    error_code = models.CharField(max_length=100, blank=True)
    first_seen_at = models.DateTimeField(help_text="When a check first found this (carried over between checks).")
    repair_status = models.CharField(max_length=16, choices=Repair.choices, default=Repair.NONE, blank=True)
    repair_requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                            on_delete=models.PROTECT, related_name="+")
    repair_requested_at = models.DateTimeField(null=True, blank=True)
    repaired_at = models.DateTimeField(null=True, blank=True)
    repair_error = models.TextField(blank=True)

    class Meta:
        ordering = ["account", "role_name", "pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.role_name or self.account}"


class TemplateRollout(models.Model):
    """Bringing every account that has a template's role to one revision of it, one
    ``RolloutAccount`` per account, run by the workers (``switchroles.rollout``)."""

    template = models.ForeignKey(RoleTemplate, on_delete=models.PROTECT, related_name="rollouts")
    revision = models.PositiveIntegerField()
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]

    def __str__(self) -> str:
        return f"roll-out of {self.template} revision {self.revision}"


class RolloutAccount(models.Model):
    """One account's part of a roll-out: re-provision its role of the template, with attempts,
    lease and last error like an onboarding step."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Not needed any more"

    rollout = models.ForeignKey(TemplateRollout, on_delete=models.CASCADE, related_name="accounts")
    account_role = models.ForeignKey(AccountRole, on_delete=models.PROTECT, related_name="rollouts")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=32, blank=True, help_text="created, adopted or updated")
    note = models.TextField(blank=True)
    last_error_code = models.CharField(max_length=100, blank=True)
    last_error_raw = models.TextField(blank=True)
    last_error_message = models.TextField(blank=True)

    class Meta:
        ordering = ["rollout", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "account_role"], name="one_rollout_part_per_role"),
        ]

    def __str__(self) -> str:
        return f"{self.rollout}: {self.account_role} ({self.get_status_display()})"


class Departure(models.Model):
    """A person who left (``switchroles.leavers.person_leave``): what went at once in the portal,
    and what was removed from their IAM user in the main account, read back from AWS."""

    class AwsState(models.TextChoices):
        PENDING = "pending", "Removing from AWS"
        VERIFIED = "verified", "Removed from AWS (read back)"
        FAILED = "failed", "AWS removal failed"

    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="departures")
    left_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    left_at = models.DateTimeField()
    reason = models.TextField(max_length=1000)
    iam_username = models.CharField(max_length=64, blank=True)
    removed = models.JSONField(default=dict, blank=True, help_text="What the portal removed at once.")
    aws_state = models.CharField(max_length=16, choices=AwsState.choices, default=AwsState.PENDING, db_index=True)
    aws_attempts = models.PositiveIntegerField(default=0)
    aws_removed = models.JSONField(default=dict, blank=True)
    aws_read_back = models.JSONField(default=dict, blank=True)
    aws_verified_at = models.DateTimeField(null=True, blank=True)
    aws_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-left_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.person} left {self.left_at:%Y-%m-%d}"


# --- the drift check fanned out per account (switchroles.drift_run, issue 20) ----------------------


class DriftRun(FanOutRun):
    """The member-account part of a :class:`DriftCheck`, one leased part per active account, so
    workers check accounts side by side and a killed worker's account is taken over after its lease
    (``switchroles.drift_run`` on ``portal.operations.fan_out``)."""

    check_run = models.OneToOneField(DriftCheck, on_delete=models.CASCADE, related_name="fan_out")
    previous_check = models.ForeignKey(DriftCheck, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+", help_text="Whose findings' first-seen dates carry over.")

    class Meta:
        ordering = ["-started_at", "-pk"]

    def __str__(self) -> str:
        return f"member-account drift check of {self.check_run}"


class DriftRunAccount(FanOutPart):
    run = models.ForeignKey(DriftRun, on_delete=models.CASCADE, related_name="parts")
    account = models.ForeignKey("onboarding.AwsAccount", on_delete=models.PROTECT, related_name="+")
    roles_checked = models.PositiveIntegerField(default=0)
    findings = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["run", "pk"]
        constraints = [models.UniqueConstraint(fields=["run", "account"], name="one_drift_part_per_account")]
        indexes = [models.Index(fields=["run", "status"], name="drift_part_run_status")]

    def __str__(self) -> str:
        return f"{self.run}: {self.account_id} ({self.get_status_display()})"


class AccessCheck(models.Model):
    """One effective-access analysis of the main account (``switchroles.access_checks``): what AWS
    really lets main-account principals assume, compared with the grants in force."""

    checked_at = models.DateTimeField(db_index=True)
    principals_checked = models.PositiveIntegerField(default=0, help_text="Main-account IAM users and roles.")
    roles_checked = models.PositiveIntegerField(default=0, help_text="Member-account roles decided for.")
    reachable_pairs = models.PositiveIntegerField(default=0, help_text="(principal, role) pairs AWS allows.")
    api_calls = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    tag_condition = models.BooleanField(default=True, help_text="Whether the console roles' trust requires the "
                                        "Switchyard person tag.")
    blocked = models.JSONField(default=list, blank=True, help_text="Principals whose own policies allow "
                               "AssumeRole but something else stops: who, why, how many roles.")
    administrators_everywhere = models.JSONField(default=list, blank=True, help_text="Principals that reach "
                                                 "every active account's access role.")
    error = models.TextField(blank=True, help_text="Why the check could not finish, if it did not.")

    class Meta:
        ordering = ["-checked_at", "-pk"]

    def __str__(self) -> str:
        return f"access check at {self.checked_at:%Y-%m-%d %H:%M}"


class AccessFinding(models.Model):
    """A difference between what AWS allows and what the grants say, open until a later check no
    longer sees it (``resolved_at``)."""

    class Kind(models.TextChoices):
        UNGRANTED = "ungranted", "Reachable without a grant"
        NOT_ALLOWED = "not_allowed", "Granted, not allowed"
        DOOR = "door", "Door into a client"
        TAG_DRIFT = "tag_drift", "Tag drift"

    kind = models.CharField(max_length=16, choices=Kind.choices, db_index=True)
    principal_type = models.CharField(max_length=16, help_text="user, role, person or account")
    principal_name = models.CharField(max_length=256)
    principal_arn = models.CharField(max_length=2048)
    person = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="access_findings")
    account = models.ForeignKey("onboarding.AwsAccount", null=True, blank=True, on_delete=models.PROTECT,
                                related_name="+")
    account_role = models.ForeignKey(AccountRole, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    role_arn = models.CharField(max_length=2048, blank=True)
    policy = models.CharField(max_length=2048, blank=True, help_text="The policy that allows it.")
    statement = models.CharField(max_length=256, blank=True)
    statement_json = models.TextField(blank=True, help_text="The statement (or trust policy) as AWS has it.")
    detail = models.TextField(blank=True, help_text="Plain words: the classification, why, what to do.")
    # What a check compares to tell a finding seen again unchanged from one to rewrite: a hash of
    # detail, policy, statement, statement_json and person (access_checks.finding_digest), so a
    # check reads a short column of each open finding, not its texts.
    digest = models.CharField(max_length=32, blank=True, default="")
    opened_at = models.DateTimeField(db_index=True)
    # When the finding was last seen, and by which check. Every main-account check looks at all
    # of its kinds, so an open one of those was seen by the latest check and is not dated again
    # each hour (tens of thousands of rows at scale): it keeps its opening date until it
    # resolves, then takes the date of the last check that saw it. Doors are seen account by
    # account and dated by each look (access_checks._store).
    last_seen_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # (not indexed: nothing looks findings up by check, and checks are never deleted)
    last_check = models.ForeignKey(AccessCheck, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                   db_index=False)

    class Meta:
        ordering = ["kind", "principal_name", "role_arn"]
        indexes = [models.Index(fields=["resolved_at", "kind"], name="access_finding_open_kind")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.principal_name} → {self.role_arn or self.account}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
