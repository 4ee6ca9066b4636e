"""The engineer's MFA device in the main account, read from IAM for their CLI profiles.

The CLI (and Granted, aws-vault) asks for a code from ``mfa_serial`` when it assumes a role; the
member roles require MFA, so the serial must be the person's real device, not a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from portal.aws import ClientFactory


@dataclass(frozen=True)
class MfaLookup:
    """The device's serial (ARN) to put in ``mfa_serial``, or None with ``note`` saying why and
    what to do."""

    serial: str | None
    note: str = ""


def mfa_device_of(*, clients: ClientFactory, user_name: str) -> MfaLookup:
    """The IAM user's first authenticator the CLI can use (virtual or hardware TOTP; a security key
    cannot answer the CLI's prompt), read with ListMFADevices in the main account."""
    try:
        devices = clients.client("iam").list_mfa_devices(UserName=user_name).get("MFADevices", [])
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchEntity":
            return MfaLookup(None, f"Your IAM user {user_name} does not exist in the main account. "
                                   "Ask a manager to check the IAM user name on your profile.")
        return MfaLookup(None, f"Switchyard could not read your MFA device from IAM ({code}). "
                               "Download the profiles again in a few minutes, or add mfa_serial yourself.")
    except BotoCoreError as exc:
        return MfaLookup(None, f"Switchyard could not reach IAM to read your MFA device ({type(exc).__name__}). "
                               "Download the profiles again in a few minutes, or add mfa_serial yourself.")
    usable = sorted((device for device in devices if ":mfa/" in device.get("SerialNumber", "")
                     or not device.get("SerialNumber", "").startswith("arn:")),
                    key=lambda device: str(device.get("EnableDate", "")))
    if usable:
        return MfaLookup(usable[0]["SerialNumber"])
    if devices:
        return MfaLookup(None, f"Your IAM user {user_name} has only a security key, which the AWS CLI cannot use. "
                               "Add an authenticator app as a second MFA device in IAM, then download again.")
    return MfaLookup(None, f"Your IAM user {user_name} has no MFA device, and the roles require one. "
                           "Add an authenticator app in IAM (Security credentials), then download again.")
