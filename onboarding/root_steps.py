"""The root-credential steps of an account's workflow, called by ``onboarding.workflow.HANDLERS``
(the state machine, leases and records stay there).

- Removal (``workflow.ROOT_REMOVAL_PATH``): each step opens a root session with the
  IAMDeleteRootUserCredentials task policy (one per chain of steps) and removes one kind of credential:
  the password (login profile), the access keys, the signing certificates, the MFA devices. Each is
  safe to run twice (what is gone already counts as done). The last step reads the root user back and
  stores the posture; anything left fails the step with what was found.
- ``ROOT_CHECK_NONE``, the last step of a created account's onboarding: looks at the new account's root
  (IAMAuditRootUserCredentials) and stores the posture; it never blocks the onboarding (an account
  with root credentials, or centralized root access off, is reported on the account's page).
- ``ROOT_ENABLE_RECOVERY``, in the hand-back before the account leaves: IAMCreateRootUserPassword, then
  a login profile without a password, so whoever holds the root e-mail can take the account over.
"""

from __future__ import annotations

from onboarding.root_services import root_posture_record
from onboarding.workflow import Outcome, StepRun
from portal import aws
from portal.aws import AwsError, TemporaryCredentials

VERIFY_ATTEMPTS = 3


def _session(run: StepRun, task: str) -> TemporaryCredentials:
    account_id = run.account.account_id or ""
    key = (account_id, task)
    known = run.chain.root_credentials.get(key)
    if known is None:
        known = run.chain.root_credentials[key] = aws.assume_root(clients=run.clients, account_id=account_id,
                                                                  task=task)
    return known


def delete_password(run: StepRun) -> Outcome:
    deleted = aws.delete_root_login_profile(clients=run.clients, credentials=_session(run, aws.DELETE_TASK))
    return Outcome.succeeded(password_deleted=deleted,
                             note="" if deleted else "The root user had no password.")


def delete_access_keys(run: StepRun) -> Outcome:
    deleted = aws.delete_root_access_keys(clients=run.clients, credentials=_session(run, aws.DELETE_TASK))
    return Outcome.succeeded(access_keys_deleted=list(deleted))


def delete_certificates(run: StepRun) -> Outcome:
    deleted = aws.delete_root_signing_certificates(clients=run.clients,
                                                   credentials=_session(run, aws.DELETE_TASK))
    return Outcome.succeeded(signing_certificates_deleted=list(deleted))


def deactivate_mfa(run: StepRun) -> Outcome:
    deactivated = aws.deactivate_root_mfa_devices(clients=run.clients,
                                                  credentials=_session(run, aws.DELETE_TASK))
    return Outcome.succeeded(mfa_devices_deactivated=list(deactivated))


def verify_removed(run: StepRun) -> Outcome:
    found = aws.read_root_credentials(clients=run.clients, credentials=_session(run, aws.DELETE_TASK))
    root_posture_record(account=run.account, found=found, now=run.now, source="removal")
    if found.none_left:
        return Outcome.succeeded(root_credentials="none left")
    tries = int(run.step.detail.get("verify_tries", 0)) + 1
    if tries < VERIFY_ATTEMPTS:
        # IAM is eventually consistent: a credential deleted seconds ago may still be listed.
        return Outcome.waiting(10, f"Waiting for IAM to show the root user without {found.described()}.",
                               verify_tries=tries)
    return Outcome.failed(AwsError(
        "RootCredentialsRemain",
        f"Root user still has {found.described()}",
        f"The root user still has {found.described()} after the removal. Someone may have added them again; "
        "“Retry this step” after the earlier steps, or request the removal again.",
        False,
    ), remaining=found.described())


def check_none(run: StepRun) -> Outcome:
    try:
        refusal = aws.root_features(clients=run.clients).refusal()
        if refusal is None:
            found = aws.read_root_credentials(clients=run.clients, credentials=_session(run, aws.AUDIT_TASK))
    except AwsError as error:
        if error.retryable:
            raise
        refusal = error
    if refusal is not None:
        root_posture_record(account=run.account, error=refusal, now=run.now, source="onboarding")
        return Outcome.succeeded(checked=False, note=f"Root credentials not checked: {refusal.plain_message}")
    root_posture_record(account=run.account, found=found, now=run.now, source="onboarding")
    if found.none_left:
        return Outcome.succeeded(checked=True, root_credentials="none")
    return Outcome.succeeded(
        checked=True, root_credentials=found.described(),
        note=f"The new account's root user has {found.described()}: remove them from the account's page.",
    )


def enable_recovery(run: StepRun) -> Outcome:
    try:
        refusal = aws.root_features(clients=run.clients).refusal()
    except AwsError as error:
        if error.retryable:
            raise
        refusal = error
    if refusal is not None:
        # Without root sessions Switchyard cannot have removed the root password: recovery works as before.
        return Outcome.succeeded(recovery="untouched",
                                 note="Centralized root access is off: the root user is as Switchyard found it, "
                                      "and its e-mail's holder can recover the password as usual.")
    created = aws.enable_root_password_recovery(
        clients=run.clients, credentials=_session(run, aws.CREATE_PASSWORD_TASK)
    )
    return Outcome.succeeded(
        recovery="enabled" if created else "already possible",
        note="" if created else "The root user had a login profile already: password recovery works as it is.",
    )
