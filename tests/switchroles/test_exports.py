"""Both exports, read by the software engineers use them with: AWS Extend Switch Roles' own parser
(the npm package aesr-config, run with node) and botocore's config loader and the AWS CLI. Every
profile resolves to a link of the person's directory: its account, role and display name."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.configloader
import botocore.session
import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from moto import mock_aws
from moto.server import ThreadedMotoServer

from switchroles import links as link_rules
from switchroles import services
from switchroles.links import AESR_PROFILE_NAME_MAX_CHARS, lz_utf16_length
from switchroles.models import AccountRole, Favourite, RoleTemplate
from switchroles.selectors import links_for_person

from .conftest import Estate, tier

SignedIn = Callable[[Any], HttpClient]
NODE_DIR = Path(__file__).resolve().parents[1] / "node"
AWS_CLI = Path(sys.executable).parent / "aws"  # the AWS CLI (awscli, a dev dependency) of this virtualenv


@pytest.fixture(autouse=True)
def _no_enforcement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "enforcement_sync_schedule", lambda *, reason: None)


@pytest.fixture
def engineer_with_links(estate: Estate, manager: Any, make_person: Any) -> Any:
    """Engineer with 7 links: Acme (2 accounts x Engineer + On-call), one Globex account (the same
    two), and the Engineer role of a client and account with names too long for AESR's display."""
    person = make_person("eli", "Engineer", iam_username="eli.engineer")
    acme = estate.client_with_roles("Acme Retail", accounts=2)
    globex = estate.client_with_roles("Globex Logistics", accounts=2)
    long_client = estate.client("Vandelay Industries International Holdings", slug="vandelay")
    estate.role(estate.account(long_client, name="production-eu-west-1-payments-platform"), "engineer")
    services.grant_create(granted_by=manager, person=person, client=acme, templates=[tier("engineer"),
                          tier("oncall")], reason="x")
    services.grant_create(granted_by=manager, person=person, account=globex.accounts.order_by("pk")[0],
                          templates=[tier("oncall"), tier("engineer")], reason="y")
    services.grant_create(granted_by=manager, person=person, client=long_client, templates=[tier("engineer")],
                          reason="z")
    return person


def read_with_aesr(text: str) -> dict[str, Any]:
    """The extension's own parser (aesr-config's ConfigParser.parseIni) and its storage's compression."""
    if not (NODE_DIR / "node_modules" / "aesr-config").is_dir():
        pytest.fail("The AESR parser is not installed: run `npm ci --prefix tests/node` (make test does).")
    done = subprocess.run(["node", str(NODE_DIR / "read_aesr.mjs")], input=text, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, f"AESR refused the export: {done.stderr}"
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def directory_links(person: Any) -> dict[tuple[str, str], AccountRole]:
    """(account ID, the console's roleName) -> role, for every link of the person's directory."""
    return {(role.account.account_id, role.role_path[1:] + role.role_name): role
            for role in links_for_person(person=person)}


def test_aesr_reads_every_link_under_the_main_account_with_its_display_name(
    engineer_with_links: Any, signed_in: SignedIn, settings: Any
) -> None:
    # given the engineer's directory
    expected = directory_links(engineer_with_links)
    assert len(expected) == 7
    # when he downloads the browser extension's configuration
    response = signed_in(engineer_with_links).get(reverse("switchroles:export_extend_switch_roles"))
    assert response.status_code == 200 and response["Content-Disposition"].startswith("attachment;")
    text = response.content.decode()
    parsed = read_with_aesr(text)
    # then AESR reads one base profile, the main account, whose targets are exactly his links: the
    # extension lists them only while the browser is signed in to the main account
    assert parsed["singles"] == []
    [base] = parsed["complexes"]
    assert base["aws_account_id"] == settings.SWITCHYARD_MAIN_ACCOUNT_ID
    targets = base["targets"]
    assert {(t["aws_account_id"], t["role_name"]) for t in targets} == set(expected)
    assert len(targets) == len(expected)
    for target in targets:
        role = expected[(target["aws_account_id"], target["role_name"])]
        # and each is listed and sent under the directory's display name, which with AESR's
        # "  |  <account ID>" fits the console's 64 characters: the tier arrives whole
        sent = target["name"] + "  |  " + target["aws_account_id"]
        assert len(sent) <= 64 and target["name"].endswith(" / " + role.template.name)
        if len(role.display_name) <= AESR_PROFILE_NAME_MAX_CHARS:
            assert target["name"] == role.display_name
        else:
            assert target["name"].startswith(role.display_name.split(" ")[0]) and "…" in target["name"]
        assert target["color"] == role.color
    names = [t["name"] for t in targets]
    assert "Vandelay Industries International Holdings / production-eu-west-1-payments-platform / Engineer" \
        not in names and any(name.startswith("Vandelay") for name in names)
    # and the size Switchyard checks against AESR's synced storage is the one AESR computes
    assert lz_utf16_length(text) == parsed["compressedChars"]


def test_aesr_gets_the_templates_region(engineer_with_links: Any, signed_in: SignedIn) -> None:
    # given the On-call template opens in eu-west-1
    RoleTemplate.objects.filter(tier="oncall").update(region="eu-west-1")
    # when exported, then AESR reads the region on exactly the On-call profiles
    parsed = read_with_aesr(signed_in(engineer_with_links).get(
        reverse("switchroles:export_extend_switch_roles")).content.decode())
    regions = {t["name"].rsplit(" / ", 1)[1]: t.get("region") for t in parsed["complexes"][0]["targets"]}
    assert regions == {"On-call support": "eu-west-1", "Engineer": None}


def test_a_role_name_aesr_would_cut_is_left_out_and_named(engineer_with_links: Any, signed_in: SignedIn) -> None:
    # given one link whose role name has "=" (made before the template form refused it)
    role = links_for_person(person=engineer_with_links).filter(template__tier="engineer").first()
    assert role is not None
    AccountRole.objects.filter(pk=role.pk).update(role_name="Eng=EU")
    # when exported, then AESR reads every other link, and the file says which one is missing and why
    text = signed_in(engineer_with_links).get(reverse("switchroles:export_extend_switch_roles")).content.decode()
    targets = read_with_aesr(text)["complexes"][0]["targets"]
    assert len(targets) == 6 and all("Eng=" not in t["role_name"] and t["role_name"] != "Eng" for t in targets)
    assert f"; Left out: {role.display_name}:" in text


def test_an_export_too_large_for_aesrs_sync_storage_says_so_and_offers_less(
    engineer_with_links: Any, signed_in: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given AESR's synced storage holds less than the engineer's 7 links (smaller here than the
    # real 21,600 characters, which takes about a thousand links)
    monkeypatch.setattr(link_rules, "AESR_SYNC_MAX_CHARS", 400)
    browser = signed_in(engineer_with_links)
    Favourite.objects.create(person=engineer_with_links, account_role=links_for_person(person=engineer_with_links)[0])
    # when he exports everything, then he is told, before any download, and offered fewer links
    response = browser.get(reverse("switchroles:export_extend_switch_roles"), {"scope": "all", "prefix": "sy-"})
    page = response.content.decode()
    assert response.status_code == 413 and "Content-Disposition" not in response
    assert "too large" in page and "Storage: Local" in page and "Favourites only" in page
    # when he asks for his favourites only, then the export is the one favourite, which fits
    favourites = browser.get(reverse("switchroles:export_extend_switch_roles"), {"scope": "favourites"})
    assert favourites.status_code == 200
    assert len(read_with_aesr(favourites.content.decode())["complexes"][0]["targets"]) == 1
    # and one client's links, or all of them for AESR's local storage, are there too
    acme = browser.get(reverse("switchroles:export_extend_switch_roles"), {"scope": "client:acme-retail"})
    assert {t["name"].split(" / ")[0] for t in read_with_aesr(acme.content.decode())["complexes"][0]["targets"]} \
        == {"Acme Retail"}
    everything = browser.get(reverse("switchroles:export_extend_switch_roles"), {"scope": "all", "anyway": "1"})
    assert len(read_with_aesr(everything.content.decode())["complexes"][0]["targets"]) == 7


def test_bad_export_options_are_answered_next_to_their_field(engineer_with_links: Any, signed_in: SignedIn) -> None:
    response = signed_in(engineer_with_links).get(reverse("switchroles:export_aws_config"),
                                                  {"scope": "client:nobody", "prefix": "My Prefix"})
    page = response.content.decode()
    assert response.status_code == 400
    assert "Select a valid choice" in page and "lowercase letters" in page


# --- ~/.aws/config ---------------------------------------------------------------------------------


@pytest.fixture
def mfa_serial(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto as the main account, where eli.engineer has a virtual MFA device."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    settings.AWS_ENDPOINT_URL = ""
    settings.AWS_REGION = "eu-west-1"
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_user(UserName="eli.engineer")
        serial = iam.create_virtual_mfa_device(VirtualMFADeviceName="eli-phone")["VirtualMFADevice"]["SerialNumber"]
        iam.enable_mfa_device(UserName="eli.engineer", SerialNumber=serial, AuthenticationCode1="123456",
                              AuthenticationCode2="654321")
        yield serial


EXISTING_CONFIG = """[default]
region = us-east-1

[profile acme-retail]
region = us-west-2
output = json
"""


def test_cli_profiles_appended_to_an_existing_config_work_in_botocore_and_the_aws_cli(
    engineer_with_links: Any, signed_in: SignedIn, mfa_serial: str, tmp_path: Path, settings: Any
) -> None:
    # given an engineer's ~/.aws/config with [default] and a profile named like one of his clients
    RoleTemplate.objects.filter(tier="oncall").update(max_session_seconds=14_400)
    expected = directory_links(engineer_with_links)
    # when he appends the export to it, and gives the source profile his access key
    export = signed_in(engineer_with_links).get(reverse("switchroles:export_aws_config"))
    assert export.status_code == 200
    config = tmp_path / "config"
    config.write_text(EXISTING_CONFIG + "\n" + export.content.decode())
    credentials = tmp_path / "credentials"
    credentials.write_text("[sy-main]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
                           "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n")
    # then botocore's loader reads the whole file: his own profiles as they were, the explained
    # source profile, and one profile per link, each starting with "sy-"
    profiles = botocore.configloader.load_config(str(config))["profiles"]
    assert profiles["default"] == {"region": "us-east-1"}
    assert profiles["acme-retail"] == {"region": "us-west-2", "output": "json"}
    assert profiles["sy-main"] == {"region": "eu-west-1"}
    assert "aws configure --profile sy-main" in config.read_text()
    ours = {name: values for name, values in profiles.items() if "role_arn" in values}
    assert len(ours) == len(expected) and all(name.startswith("sy-") for name in ours)
    seen = set()
    for name, values in ours.items():
        arn = values["role_arn"]
        key = (arn.split(":")[4], arn.split(":role/", 1)[1])
        role = expected[key]
        seen.add(key)
        assert values["source_profile"] == "sy-main"
        assert values["mfa_serial"] == mfa_serial
        assert values["role_session_name"] == "eli.engineer"
        assert values["duration_seconds"] == str(role.template.max_session_seconds)
        assert values["region"] == "eu-west-1"
        # botocore's session for the profile resolves the same values
        scoped = botocore.session.Session(profile=name)
        scoped.set_config_variable("config_file", str(config))
        assert scoped.get_scoped_config()["role_arn"] == arn
    assert seen == set(expected)
    assert "14400" in {values["duration_seconds"] for values in ours.values()}

    # and the AWS CLI assumes every profile's role (STS answered by a moto server, the MFA code
    # typed on standard input): `aws configure list` shows assumed-role credentials for each
    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_CONFIG_FILE": str(config),
               "AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_ENDPOINT_URL_STS": f"http://{host}:{port}"}
        for name in [*ours, "default", "acme-retail"]:
            done = subprocess.run([str(AWS_CLI), "configure", "list", "--profile", name], input="123456\n",
                                  capture_output=True, text=True, env=env, timeout=120, check=False)
            assert done.returncode == 0, (name, done.stderr)
            if name in ours:
                assert "assume-role" in done.stdout and "eu-west-1" in done.stdout, (name, done.stdout)
    finally:
        server.stop()


def test_without_an_mfa_device_the_cli_export_says_what_to_do(
    engineer_with_links: Any, signed_in: SignedIn, mfa_serial: str
) -> None:
    # given his only device is removed in IAM
    iam = boto3.client("iam", region_name="us-east-1")
    iam.deactivate_mfa_device(UserName="eli.engineer", SerialNumber=mfa_serial)
    # when he downloads the profiles, then they have no mfa_serial and the file says why and what to do
    text = signed_in(engineer_with_links).get(reverse("switchroles:export_aws_config")).content.decode()
    assert "mfa_serial" not in text
    assert "# Your IAM user eli.engineer has no MFA device" in text and "Add an authenticator app in IAM" in text


def test_the_cli_export_takes_a_prefix_and_one_client(engineer_with_links: Any, signed_in: SignedIn,
                                                      mfa_serial: str, tmp_path: Path) -> None:
    text = signed_in(engineer_with_links).get(reverse("switchroles:export_aws_config"),
                                              {"scope": "client:acme-retail", "prefix": "work-"}).content.decode()
    config = tmp_path / "config"
    config.write_text(text)
    profiles = botocore.configloader.load_config(str(config))["profiles"]
    ours = [name for name, values in profiles.items() if "role_arn" in values]
    assert len(ours) == 4 and all(name.startswith("work-acme-retail-") for name in ours)
    assert {values.get("source_profile") for values in profiles.values()} == {"work-main", None}


def test_the_cli_export_needs_an_iam_user_name(estate: Estate, manager: Any, make_person: Any,
                                              signed_in: SignedIn) -> None:
    # given a person without an IAM user name
    person = make_person("nina", "Engineer")
    person.iam_username = ""
    person.save(update_fields=["iam_username"])
    # when she asks for CLI profiles, then she is told what is missing instead
    response = signed_in(person).get(reverse("switchroles:export_aws_config"))
    assert response.status_code == 409
    assert b"IAM user name" in response.content


def test_a_person_without_links_exports_no_profiles(make_person: Any, signed_in: SignedIn) -> None:
    browser = signed_in(make_person("nina", "Engineer"))
    parsed = read_with_aesr(browser.get(reverse("switchroles:export_extend_switch_roles")).content.decode())
    assert parsed["singles"] == [] and parsed["complexes"] == []


def test_one_clients_export_is_chosen_on_a_page_listing_the_clients(engineer_with_links: Any,
                                                                    signed_in: SignedIn) -> None:
    # when the engineer asks for one client's links without naming it, then the next page lists his clients
    page = signed_in(engineer_with_links).get(reverse("switchroles:export_extend_switch_roles"),
                                              {"scope": "client", "prefix": "sy-"}).content.decode()
    assert '<option value="client:acme-retail">Acme Retail only</option>' in page
    assert '<option value="client:globex-logistics">Globex Logistics only</option>' in page
