"""Root posture where people read it: the sortable list of every account, the drift page, the
client's evidence pack, the on-demand check; and the daily re-check on the beat schedule."""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from onboarding.models import AwsAccount, Client, RootPosture
from onboarding.root_selectors import root_credentials_for
from portal.audit.models import AuditEvent
from portal.people.models import User

pytestmark = pytest.mark.django_db


def account_with_posture(name: str, account_id: str, **posture: Any) -> AwsAccount:
    client, _ = Client.objects.get_or_create(slug="acme", defaults={"name": "Acme Retail"})
    account = AwsAccount.objects.create(client=client, name=name, origin=AwsAccount.Origin.INVITED,
                                        account_id=account_id, reason="test", state=AwsAccount.State.ACTIVE)
    if posture:
        RootPosture.objects.create(account=account, checked_at=timezone.now(), attempted_at=timezone.now(), **posture)
    return account


def test_the_list_counts_root_passwords_and_sorts_by_what_is_left(manager: User, signed_in: Any) -> None:
    # given three accounts: two with a root password (one also with keys), one clean, one never checked
    account_with_posture("billing", "111111111111", password=True)
    account_with_posture("production", "222222222222", password=True, access_keys=2)
    account_with_posture("staging", "333333333333", password=False)
    account_with_posture("sandbox", "444444444444")

    # when a manager opens the list sorted by access keys
    page = signed_in(manager).get(reverse("onboarding:root_posture_list") + "?sort=keys").content.decode()

    # then it leads with the count, and the account with keys comes first
    assert "2 accounts still have a root password" in page
    assert "1 not checked yet" in page
    assert page.index("Acme Retail / production") < page.index("Acme Retail / billing")


def test_drift_lists_accounts_with_root_credentials(manager: User, signed_in: Any) -> None:
    # given an account last seen with an MFA device and one with nothing
    account_with_posture("production", "222222222222", mfa_devices=1)
    account_with_posture("staging", "333333333333")

    # when the drift page is read
    page = signed_in(manager).get(reverse("switchroles:drift")).content.decode()

    # then only the first is a root finding
    assert "1 account still has root credentials" in page
    assert "Acme Retail / production</a> <code>222222222222</code>: 1 MFA device" in page
    assert "Acme Retail / staging</a> <code>333333333333</code>" not in page


def test_the_evidence_pack_holds_each_accounts_root_posture(auditor: User, signed_in: Any) -> None:
    # given an account with a root password
    account = account_with_posture("production", "222222222222", password=True, signing_certificates=1)

    # when an auditor downloads the client's evidence pack
    response = signed_in(auditor).get(reverse("audit:evidence_pack", args=[account.client_id]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))

    # then root-credentials.csv says what the root user had, and the manifest lists the file
    rows = list(csv.reader(io.StringIO(archive.read("root-credentials.csv").decode())))
    assert rows[0][:7] == ["account", "account_id", "state", "root_password", "mfa_devices", "access_keys",
                           "signing_certificates"]
    assert rows[1][:7] == ["production", "222222222222", "active", "yes", "0", "0", "1"]
    assert "root-credentials.csv" in archive.read("manifest.json").decode()


def test_the_api_dict_of_an_account(manager: User) -> None:
    # given an account checked with a password and two MFA devices
    account = account_with_posture("production", "222222222222", password=True, mfa_devices=2)

    # then the selector gives the API's root_credentials
    found = root_credentials_for(AwsAccount.objects.select_related("root_posture").get(pk=account.pk))
    assert found == {"password": True, "mfa_devices": 2, "access_keys": 0, "signing_certificates": 0,
                     "checked_at": account.root_posture.checked_at.isoformat()}


def test_check_now_is_audited_and_queued(manager: User, signed_in: Any, monkeypatch: pytest.MonkeyPatch,
                                         django_capture_on_commit_callbacks: Any) -> None:
    # given an account, and the worker's task observed (the broker is eager in tests)
    account = account_with_posture("production", "222222222222")
    checked: list[int] = []
    monkeypatch.setattr("onboarding.tasks.root_posture_check",
                        lambda *, account: checked.append(account.pk) or RootPosture(account=account))

    # when a manager asks for a check now
    browser = signed_in(manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(reverse("onboarding:account_root_check", args=[account.pk]))

    # then it is audited and a worker checks that account
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="onboarding.root.check_requested", actor=manager).count() == 1
    assert checked == [account.pk]


def test_an_auditor_cannot_ask_for_a_check(auditor: User, signed_in: Any) -> None:
    account = account_with_posture("production", "222222222222")

    response = signed_in(auditor).post(reverse("onboarding:account_root_check", args=[account.pk]))

    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="onboarding.root.check_requested").exists()


def test_the_daily_root_check_is_on_the_beat_schedule() -> None:
    from portal.celery import app

    entry = app.conf.beat_schedule["root-posture-check"]
    assert entry["task"] == "onboarding.tasks.check_root_posture_due"
    assert entry["schedule"] <= 24 * 3600
