"""Clients, their AWS accounts, and the onboarding workflow as rows.

The database is the source of truth: each step of an account's onboarding is an
``OnboardingStep`` row with its status, attempts, lease and last error. Workers only ever say
"advance this account"; the reconciler re-drives any step whose lease ran out.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinLengthValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse

from portal.operations.models import FanOutPart, FanOutRun
from portal.people.models import IAM_NAME_VALIDATOR
from switchroles.links import switch_role_url

ACCOUNT_ID_VALIDATOR = RegexValidator(r"^[0-9]{12}\Z", "An AWS account id is exactly 12 digits.")
SLUG_VALIDATOR = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?\Z",
    "Use 1–32 lower-case letters, digits and hyphens, starting and ending with a letter or digit.",
)


class Client(models.Model):
    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        LEAVING = "leaving", "Leaving"
        LEFT = "left", "Left"

    name = models.CharField(max_length=100, unique=True)
    slug = models.CharField(
        max_length=32,
        unique=True,
        validators=[SLUG_VALIDATOR],
        help_text="Used in role paths (/switchyard/<slug>/) and account e-mail addresses.",
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("onboarding:client_detail", kwargs={"client_id": self.pk})


class OnboardingBatch(models.Model):
    """Many accounts adopted or invited in one go: each has its own workflow; the batch only groups
    them for one page of progress."""

    origin = models.CharField(max_length=16)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT,
                                     related_name="+")
    reason = models.TextField(max_length=1000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind_label} batch {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("onboarding:batch_detail", kwargs={"batch_id": self.pk})

    @property
    def kind_label(self) -> str:
        return "Adoption" if self.origin == "adopted" else "Invitation"


class AwsAccount(models.Model):
    class Origin(models.TextChoices):
        CREATED = "created", "Created in our Organization"
        INVITED = "invited", "Invited (client's existing account)"
        ADOPTED = "adopted", "Adopted (already in our Organization)"

    class State(models.TextChoices):
        REQUESTED = "requested", "Requested"
        CREATING = "creating", "Creating the account"
        INVITING = "inviting", "Invitation sent"
        AWAITING_ACCESS_ROLE = "awaiting_access_role", "Waiting for the client's access role"
        PROVISIONING = "provisioning", "Provisioning roles"
        ACTIVE = "active", "Active"
        FAILED = "failed", "Needs attention"
        CANCELLED = "cancelled", "Cancelled"
        DECLINED = "declined", "Invitation declined"
        EXPIRED = "expired", "Invitation expired"
        HANDING_BACK = "handing_back", "Handing back"
        HANDED_BACK = "handed_back", "Handed back"
        REMOVING_ROOT = "removing_root_credentials", "Removing root credentials"

    # States in which the account is no longer being worked on.
    FINAL_STATES = frozenset({State.ACTIVE, State.CANCELLED, State.DECLINED, State.EXPIRED, State.HANDED_BACK})

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="accounts")
    name = models.CharField("account name", max_length=50, validators=[MinLengthValidator(1)])
    account_id = models.CharField(
        "AWS account id", max_length=12, null=True, blank=True, unique=True, validators=[ACCOUNT_ID_VALIDATOR]
    )
    root_email = models.EmailField("root e-mail", max_length=64, unique=True, null=True, blank=True,
                                   validators=[MinLengthValidator(6)])
    origin = models.CharField(max_length=16, choices=Origin.choices)
    state = models.CharField(max_length=32, choices=State.choices, default=State.REQUESTED, db_index=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT,
                                     related_name="+")
    reason = models.TextField(max_length=1000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # AWS bookkeeping: recorded before anything else is sent, so a retry reconciles instead of repeating.
    create_request_id = models.CharField(max_length=64, blank=True)
    handshake_id = models.CharField(max_length=64, blank=True)
    handshake_expires_at = models.DateTimeField(null=True, blank=True)
    access_role_name = models.CharField(
        "access role", max_length=64, blank=True, validators=[IAM_NAME_VALIDATOR],
        help_text="The role Switchyard assumes in the account; empty: OrganizationAccountAccessRole "
        "(SwitchyardAccessRole for invited accounts).",
    )
    # For an adopted account: what to do with the roles found trusting the main account ("adopt" or "report").
    existing_roles = models.CharField(max_length=8, blank=True)
    batch = models.ForeignKey("OnboardingBatch", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="accounts")

    class Meta:
        ordering = ["client__name", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(origin__in=["invited", "adopted"], account_id__isnull=False) | Q(origin="created"),
                name="invited_account_has_id",
            ),
            models.CheckConstraint(
                condition=Q(origin__in=["invited", "adopted"]) | Q(origin="created", root_email__isnull=False),
                name="created_account_has_email",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.client.name} / {self.name}"

    def get_absolute_url(self) -> str:
        return reverse("onboarding:account_detail", kwargs={"account_id": self.pk})

    @property
    def access_role(self) -> str:
        """The name of the role Switchyard assumes in this account."""
        if self.access_role_name:
            return self.access_role_name
        return "SwitchyardAccessRole" if self.origin == self.Origin.INVITED else "OrganizationAccountAccessRole"

    @property
    def is_in_progress(self) -> bool:
        return self.state not in self.FINAL_STATES and self.state != self.State.FAILED


class OnboardingStep(models.Model):
    """One step of an account's workflow. Status moves pending → running → (waiting ↔ running)
    → succeeded | failed | cancelled, always through ``onboarding.services``."""

    class Kind(models.TextChoices):
        CREATE_ACCOUNT = "create_account", "Create the account in the Organization"
        AWAIT_CREATION = "await_creation", "Wait for AWS to finish creating it"
        INVITE_ACCOUNT = "invite_account", "Invite the client's account"
        AWAIT_HANDSHAKE = "await_handshake", "Wait for the client to accept the invitation"
        AWAIT_ACCESS_ROLE = "await_access_role", "Wait for the client to create the access role"
        ASSUME_ACCESS_ROLE = "assume_access_role", "Reach the account's access role"
        PROVISION_ROLES = "provision_roles", "Create the cross-account roles"
        VERIFY_ROLES = "verify_roles", "Read the roles back and verify them"
        PUBLISH_LINKS = "publish_links", "Publish the switch-role links"
        # Adoption of an account already in the Organization (onboarding.adoption).
        DISCOVER_ROLES = "discover_roles", "Find the roles already trusting the main account"
        # Hand-back (onboarding.handback): appended after the onboarding steps of an active account.
        REVOKE_GRANTS = "revoke_grants", "Revoke every grant on the account"
        DELETE_ROLES = "delete_roles", "Delete Switchyard's roles in the account"
        LEAVE_ORGANIZATION = "leave_organization", "Remove the account from the Organization"
        RECORD_HANDBACK = "record_handback", "Record the hand-back"
        # Root credentials (onboarding.root_steps): removal, the check of a created account, hand-back.
        ROOT_DELETE_PASSWORD = "root_delete_password", "Delete the root user's password"
        ROOT_DELETE_ACCESS_KEYS = "root_delete_access_keys", "Delete the root user's access keys"
        ROOT_DELETE_CERTIFICATES = "root_delete_certificates", "Delete the root user's signing certificates"
        ROOT_DEACTIVATE_MFA = "root_deactivate_mfa", "Deactivate the root user's MFA devices"
        ROOT_VERIFY_REMOVED = "root_verify_removed", "Read the root user back: nothing left"
        ROOT_CHECK_NONE = "root_check_none", "Check the new account has no root credentials"
        ROOT_ENABLE_RECOVERY = "root_enable_recovery", "Enable root password recovery for the client"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting"
        SUCCEEDED = "succeeded", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    account = models.ForeignKey(AwsAccount, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=32, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_error_code = models.CharField(max_length=100, blank=True)
    last_error_raw = models.TextField(blank=True)
    last_error_message = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["account", "position"]
        constraints = [
            models.UniqueConstraint(fields=["account", "position"], name="one_step_per_position"),
            models.UniqueConstraint(fields=["account", "kind"], name="one_step_per_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.get_status_display()})"


class ExistingRole(models.Model):
    """A role found in an adopted account that trusts the main account but was not made by Switchyard
    (how the team worked before). ``adopted``: Switchyard publishes its switch-role link; else it is
    only reported, as a door into the account that no grant explains."""

    account = models.ForeignKey(AwsAccount, on_delete=models.CASCADE, related_name="existing_roles_found")
    arn = models.CharField(max_length=2048)
    role_path = models.CharField(max_length=512)
    role_name = models.CharField(max_length=64)
    trusted_principals = models.JSONField(default=list)
    managed_policy_arns = models.JSONField(default=list)
    adopted = models.BooleanField(default=False)
    found_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account", "role_name"]
        constraints = [models.UniqueConstraint(fields=["account", "role_name"], name="one_existing_role_per_name")]

    def __str__(self) -> str:
        return self.arn

    @property
    def switch_role_url(self) -> str:
        return switch_role_url(
            account_id=self.account.account_id or "",
            role_path=self.role_path,
            role_name=self.role_name,
            display_name=f"{self.account.client.name} {self.account.name} {self.role_name}"[:64],
            color="yellow",  # the console palette's colour for roles outside the tiers
        )
class RootPosture(models.Model):
    """What an account's root user had when the workers last looked (``sts:AssumeRoot`` with the
    IAMAuditRootUserCredentials task policy). ``checked_at`` is the last successful look (None: never);
    ``attempted_at`` and ``last_error_*`` the last attempt when it failed (cleared by a success)."""

    account = models.OneToOneField(AwsAccount, on_delete=models.CASCADE, related_name="root_posture")
    password = models.BooleanField(default=False)
    mfa_devices = models.PositiveIntegerField(default=0)
    access_keys = models.PositiveIntegerField(default=0)
    signing_certificates = models.PositiveIntegerField(default=0)
    checked_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempted_at = models.DateTimeField(null=True, blank=True)
    last_error_code = models.CharField(max_length=100, blank=True)
    last_error_message = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"Root of {self.account_id}: {self.summary}"

    @property
    def known(self) -> bool:
        return self.checked_at is not None

    @property
    def has_credentials(self) -> bool:
        return bool(self.password or self.mfa_devices or self.access_keys or self.signing_certificates)

    @property
    def summary(self) -> str:
        if not self.known:
            return "not checked yet"
        parts = ["a password"] if self.password else []
        for count, what in ((self.mfa_devices, "MFA device"), (self.access_keys, "access key"),
                            (self.signing_certificates, "signing certificate")):
            if count:
                parts.append(f"{count} {what}{'s' if count > 1 else ''}")
        return ", ".join(parts) if parts else "no root credentials"


class RootPostureRun(FanOutRun):
    """One daily root-posture check fanned out (``onboarding.root_checks``): one leased part per
    account due, so a killed worker's account is checked by another after its lease."""

    class Meta:
        ordering = ["-started_at", "-pk"]

    def __str__(self) -> str:
        return f"root-posture check of {self.started_at:%Y-%m-%d %H:%M}"


class RootPostureRunAccount(FanOutPart):
    run = models.ForeignKey(RootPostureRun, on_delete=models.CASCADE, related_name="parts")
    account = models.ForeignKey(AwsAccount, on_delete=models.CASCADE, related_name="+")
    error_code = models.CharField(max_length=100, blank=True, help_text="Why AWS could not be asked, if it could not.")

    class Meta:
        ordering = ["run", "pk"]
        constraints = [models.UniqueConstraint(fields=["run", "account"], name="one_root_part_per_account")]
        indexes = [models.Index(fields=["run", "status"], name="root_part_run_status")]

    def __str__(self) -> str:
        return f"{self.run}: {self.account_id} ({self.get_status_display()})"
