"""The one place tests build rows: a factory_boy ``DjangoModelFactory`` per model.

Every factory makes a valid row with no arguments (unique names and account ids from sequences,
the parents it needs from sub-factories), and every field can be overridden by keyword:

    AccountRoleFactory(tier="administrator")            # a client, an ACTIVE account and its role
    GrantFactory(team=team, client=acme, tiers=("engineer",), granted_by=manager)
    UserFactory(username="eli", capabilities=("Engineer",))   # with an enrolled authenticator

What factories never do is write an audit event: those are written by the services (a test that
needs the event of a grant calls ``switchroles.services``, not a factory), so a factory cannot make
a history the product could not have made. Rows that only a service may create with its side
effects (API tokens, onboarding requests) are made by calling that service, not here.

Models are named by their app label (``"onboarding.AwsAccount"``), so a module that moves within
its app does not break the factories.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import factory
import pyotp
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Group
from django.utils import timezone
from factory.django import DjangoModelFactory

from switchroles.links import display_name_for

PASSWORD = "correct horse battery staple"  # noqa: S105


def _model(label: str) -> Any:
    return apps.get_model(label)


def seeded_template(tier: str) -> Any:
    """A role template of the data migration, by tier: "administrator", "engineer" or "oncall"."""
    return _model("switchroles.RoleTemplate").objects.get(tier=tier)


# --- people -----------------------------------------------------------------------------------------


class UserFactory(DjangoModelFactory):
    """A person who can sign in with ``PASSWORD``; ``capabilities`` are the names of their groups
    ("Manager", "Engineer", "Auditor", "Finance", "ClientContact"); with ``mfa=True`` (the default)
    they have a TOTP authenticator and recovery codes, the TOTP secret on ``user.totp_secret``."""

    class Meta:
        model = settings.AUTH_USER_MODEL
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"person{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    iam_username = factory.LazyAttribute(lambda o: o.username)
    password = PASSWORD

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        # create_user hashes the password (with the test's hasher) and normalises the e-mail.
        return model_class._default_manager.create_user(*args, **kwargs)

    @factory.post_generation
    def capabilities(obj: Any, create: bool, extracted: tuple[str, ...] | None, **_: Any) -> None:  # noqa: N805
        for name in extracted or ():
            obj.groups.add(Group.objects.get(name=name))

    @factory.post_generation
    def mfa(obj: Any, create: bool, extracted: bool | None, **_: Any) -> None:  # noqa: N805
        if extracted is False or not create:
            return
        secret = pyotp.random_base32()
        TOTP.activate(obj, secret)
        RecoveryCodes.activate(obj)
        obj.totp_secret = secret


# What a sub-factory passes for the people a row needs (``factory.SubFactory(UserFactory, **AS_MANAGER)``).
AS_MANAGER: dict[str, Any] = {"username": factory.Sequence(lambda n: f"manager{n}"), "capabilities": ("Manager",)}
AS_ENGINEER: dict[str, Any] = {"username": factory.Sequence(lambda n: f"engineer{n}"), "capabilities": ("Engineer",)}


# --- clients and their accounts --------------------------------------------------------------------


class ManagedClientFactory(DjangoModelFactory):
    class Meta:
        model = "onboarding.Client"

    name = factory.Sequence(lambda n: f"Client {n}")
    slug = factory.LazyAttribute(lambda o: o.name.lower().replace(" ", "-")[:32])


class AwsAccountFactory(DjangoModelFactory):
    """An ACTIVE account made by Switchyard (its onboarding already done; tests of the workflow
    use ``tests.onboarding.conftest.make_account``, which adds the steps)."""

    class Meta:
        model = "onboarding.AwsAccount"

    client = factory.SubFactory(ManagedClientFactory)
    name = "Production"
    account_id = factory.Sequence(lambda n: f"{500000000000 + n * 11:012d}")
    root_email = factory.LazyAttribute(lambda o: f"awsaccounts+{o.account_id}@example.com")
    origin = "created"
    state = "active"
    reason = "test"


class OnboardingStepFactory(DjangoModelFactory):
    class Meta:
        model = "onboarding.OnboardingStep"

    account = factory.SubFactory(AwsAccountFactory)
    position = factory.Sequence(lambda n: n + 1)
    kind = "create_account"
    status = "pending"


class OnboardingBatchFactory(DjangoModelFactory):
    class Meta:
        model = "onboarding.OnboardingBatch"

    origin = "adopted"
    requested_by = factory.SubFactory(UserFactory, **AS_MANAGER)
    reason = "test"


# --- roles, teams and grants ----------------------------------------------------------------------


class RoleTemplateFactory(DjangoModelFactory):
    """A custom template (the three seeded ones come from the data migration: ``seeded_template``)."""

    class Meta:
        model = "switchroles.RoleTemplate"

    name = factory.Sequence(lambda n: f"Custom {n}")
    tier = "custom"
    role_name = factory.Sequence(lambda n: f"SwitchyardCustom{n}")
    console_color = "efda95"


class AccountRoleFactory(DjangoModelFactory):
    """A role of an account as onboarding publishes it: ACTIVE (with its ARN and the time its link
    was published), named after its template, at ``/switchyard/<client slug>/``. ``tier`` picks a
    seeded template; ``template=`` any other."""

    class Meta:
        model = "switchroles.AccountRole"

    class Params:
        tier = "engineer"

    account = factory.SubFactory(AwsAccountFactory)
    template = factory.LazyAttribute(lambda o: seeded_template(o.tier))
    role_path = factory.LazyAttribute(lambda o: f"/switchyard/{o.account.client.slug}/")
    role_name = factory.LazyAttribute(lambda o: o.template.role_name)
    arn = factory.LazyAttribute(lambda o: f"arn:aws:iam::{o.account.account_id}:role{o.role_path}{o.role_name}")
    state = "active"
    display_name = factory.LazyAttribute(
        lambda o: display_name_for(o.account.client.name, o.account.name, o.template.name))
    color = factory.LazyAttribute(lambda o: o.template.console_color)
    activated_at = factory.LazyAttribute(lambda o: None if o.state == "pending" else timezone.now())


class TeamFactory(DjangoModelFactory):
    class Meta:
        model = "switchroles.Team"

    name = factory.Sequence(lambda n: f"Team {n}")
    iam_group_name = factory.LazyAttribute(lambda o: o.name.replace(" ", "-"))


class TeamMembershipFactory(DjangoModelFactory):
    class Meta:
        model = "switchroles.TeamMembership"

    team = factory.SubFactory(TeamFactory)
    person = factory.SubFactory(UserFactory, **AS_ENGINEER)
    added_at = factory.LazyFunction(timezone.now)


class GrantFactory(DjangoModelFactory):
    """A grant to a team (``team=None, person=...`` for a person) on a client (``client=None,
    account=...`` for one account), of the templates of ``tiers`` (or ``templates=[...]``).
    A grant made with ``revoked_at`` is revoked by whoever granted it."""

    class Meta:
        model = "switchroles.Grant"
        skip_postgeneration_save = True

    team = factory.SubFactory(TeamFactory)
    person = None
    client = factory.SubFactory(ManagedClientFactory)
    account = None
    reason = "on-call rotation"
    granted_by = factory.SubFactory(UserFactory, **AS_MANAGER)
    granted_at = factory.LazyFunction(timezone.now)
    expires_at = None
    revoked_at = None
    revoked_by = factory.LazyAttribute(lambda o: o.granted_by if o.revoked_at else None)

    @factory.post_generation
    def tiers(obj: Any, create: bool, extracted: tuple[str, ...] | None, **_: Any) -> None:  # noqa: N805
        if extracted is not None:
            obj.templates.set(_model("switchroles.RoleTemplate").objects.filter(tier__in=extracted))

    @factory.post_generation
    def templates(obj: Any, create: bool, extracted: list[Any] | None, **_: Any) -> None:  # noqa: N805
        if extracted is not None:
            obj.templates.set(extracted)


class LinkUseFactory(DjangoModelFactory):
    class Meta:
        model = "switchroles.LinkUse"

    person = factory.SubFactory(UserFactory, **AS_ENGINEER)
    account_role = factory.SubFactory(AccountRoleFactory)
    grant = None
    used_at = factory.LazyFunction(timezone.now)


class FavouriteFactory(DjangoModelFactory):
    class Meta:
        model = "switchroles.Favourite"

    person = factory.SubFactory(UserFactory, **AS_ENGINEER)
    account_role = factory.SubFactory(AccountRoleFactory)


class EnforcedPrincipalFactory(DjangoModelFactory):
    """The record of a team's IAM group that the enforcement sync writes to."""

    class Meta:
        model = "switchroles.EnforcedPrincipal"

    principal_type = "group"
    team = factory.SubFactory(TeamFactory)
    principal_name = factory.LazyAttribute(lambda o: o.team.iam_group_name)
    policy_name_prefix = factory.LazyAttribute(lambda o: f"switchyard-{o.team.iam_group_name.lower()}")


class DriftCheckFactory(DjangoModelFactory):
    class Meta:
        model = "switchroles.DriftCheck"

    checked_at = factory.LazyFunction(timezone.now)


class RoleDriftFindingFactory(DjangoModelFactory):
    class Meta:
        model = "switchroles.RoleDriftFinding"

    check_run = factory.SubFactory(DriftCheckFactory)
    kind = "different"
    account_role = factory.SubFactory(AccountRoleFactory)
    account = factory.LazyAttribute(lambda o: o.account_role.account)
    role_path = factory.LazyAttribute(lambda o: o.account_role.role_path)
    role_name = factory.LazyAttribute(lambda o: o.account_role.role_name)
    role_arn = factory.LazyAttribute(lambda o: o.account_role.arn)
    differences = factory.LazyFunction(lambda: ["The trust policy differs."])
    first_seen_at = factory.LazyFunction(timezone.now)


class TemplateRolloutFactory(DjangoModelFactory):
    class Meta:
        model = "switchroles.TemplateRollout"

    class Params:
        tier = "engineer"

    template = factory.LazyAttribute(lambda o: seeded_template(o.tier))
    revision = factory.LazyAttribute(lambda o: o.template.revision)
    requested_by = factory.SubFactory(UserFactory, **AS_MANAGER)
    started_at = factory.LazyFunction(timezone.now)


class RolloutAccountFactory(DjangoModelFactory):
    class Meta:
        model = "switchroles.RolloutAccount"

    rollout = factory.SubFactory(TemplateRolloutFactory)
    account_role = factory.SubFactory(AccountRoleFactory)


class DepartureFactory(DjangoModelFactory):
    """A leaver's record (the leaver service writes it with its audit event; this is for pages
    that only read it)."""

    class Meta:
        model = "switchroles.Departure"

    person = factory.SubFactory(UserFactory, is_active=False, **AS_ENGINEER)
    left_by = factory.SubFactory(UserFactory, **AS_MANAGER)
    left_at = factory.LazyFunction(timezone.now)
    reason = "left"
    iam_username = factory.LazyAttribute(lambda o: o.person.iam_username)


# --- auditors' reviews ----------------------------------------------------------------------------


class AccessReviewFactory(DjangoModelFactory):
    class Meta:
        model = "portal.AccessReview"
        skip_postgeneration_save = True

    title = factory.Sequence(lambda n: f"Review {n}")
    scope = "everything"
    deadline = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))
    opened_by = factory.SubFactory(UserFactory, **AS_MANAGER)
    opened_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def reviewers(obj: Any, create: bool, extracted: list[Any] | None, **_: Any) -> None:  # noqa: N805
        for person in extracted or ():
            obj.reviewers.add(person)


class AccessReviewItemFactory(DjangoModelFactory):
    class Meta:
        model = "portal.AccessReviewItem"

    review = factory.SubFactory(AccessReviewFactory)
    grant = factory.SubFactory(GrantFactory, tiers=("engineer",))


# --- client contacts and elevations ---------------------------------------------------------------


class ClientContactFactory(DjangoModelFactory):
    """A person at a client who may approve elevations on its accounts (in the "ClientContact"
    group: a transactional test whose flush took it puts it back first)."""

    class Meta:
        model = "elevations.ClientContact"

    user = factory.SubFactory(UserFactory, username=factory.Sequence(lambda n: f"contact{n}"),
                              capabilities=("ClientContact",))
    client = factory.SubFactory(ManagedClientFactory)
    invited_by = factory.SubFactory(UserFactory, **AS_MANAGER)
    invited_at = factory.LazyFunction(timezone.now)


class ElevationRequestFactory(DjangoModelFactory):
    """An engineer's pending request for a seeded template (``tier``) on an account."""

    class Meta:
        model = "elevations.ElevationRequest"

    class Params:
        tier = "administrator"

    requester = factory.SubFactory(UserFactory, **AS_ENGINEER)
    account = factory.SubFactory(AwsAccountFactory)
    template = factory.LazyAttribute(lambda o: seeded_template(o.tier))
    duration_minutes = 30
    reason = "INC-1"
    approvers = "manager"
    requested_at = factory.LazyFunction(timezone.now)
    answer_by = factory.LazyAttribute(lambda o: o.requested_at + timedelta(hours=1))


# --- short-hands in the tests' own words ------------------------------------------------------------
# The auditors', elevations' and security tests lay out histories with these; each is one factory
# call, so a row is built the same way whichever test asks for it.


def make_client(name: str, slug: str | None = None) -> Any:
    return ManagedClientFactory(name=name, **({"slug": slug} if slug else {}))


def make_account(client: Any, name: str = "Production", account_id: str | None = None, **fields: Any) -> Any:
    """An ACTIVE account of ``client`` (an id from the sequence unless given)."""
    return AwsAccountFactory(client=client, name=name, **({"account_id": account_id} if account_id else {}),
                             **fields)


def make_role(account: Any, tier: str, *, activated_at: datetime | None = None,
              removed_at: datetime | None = None, **fields: Any) -> Any:
    """A published role of a seeded template; REMOVED (its link gone since ``removed_at``) if given."""
    return AccountRoleFactory(
        account=account, tier=tier, state="removed" if removed_at else "active",
        activated_at=activated_at or timezone.now(), removed_at=removed_at, **fields,
    )


def make_team(name: str) -> Any:
    return TeamFactory(name=name)


def add_member(team: Any, person: Any, *, at: datetime, until: datetime | None = None) -> Any:
    return TeamMembershipFactory(team=team, person=person, added_at=at, removed_at=until)


def make_grant(*, by: Any, tiers: tuple[str, ...], team: Any = None, person: Any = None, client: Any = None,
               account: Any = None, at: datetime | None = None, expires_at: datetime | None = None,
               revoked_at: datetime | None = None, reason: str = "on-call rotation") -> Any:
    return GrantFactory(
        team=team, person=person, client=client, account=account, granted_by=by, tiers=tiers, reason=reason,
        granted_at=at or timezone.now(), expires_at=expires_at, revoked_at=revoked_at,
    )
