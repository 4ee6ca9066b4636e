"""The evidence pack of a client: one zip with the access matrix now, every grant ever made on it,
every use of its links, the root-credential posture and the audit chain verified at download time."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any

from django.http import FileResponse
from django.utils import timezone

from onboarding.models import Client
from onboarding.root_selectors import client_root_posture_rows
from portal.audit import audit_verify_chain
from portal.audit.models import AuditChainCheck
from portal.evidence.matrix import AccessMatrix, MatrixFilters
from portal.evidence.selectors import client_grant_history_rows, client_use_rows
from portal.people.models import User
from portal.web.downloads import csv_cells


def last_chain_check() -> AuditChainCheck | None:
    return AuditChainCheck.objects.first()


def _write_csv(archive: zipfile.ZipFile, name: str, rows: Iterable[Sequence[Any]]) -> str:
    """Write rows into ``name`` inside the archive a row at a time; return the file's SHA-256."""
    digest = hashlib.sha256()
    with archive.open(name, "w") as raw:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for row in rows:
            writer.writerow(csv_cells(row))
            if buffer.tell() > 64 * 1024:
                chunk = buffer.getvalue().encode()
                digest.update(chunk)
                raw.write(chunk)
                buffer.seek(0)
                buffer.truncate()
        chunk = buffer.getvalue().encode()
        digest.update(chunk)
        raw.write(chunk)
    return digest.hexdigest()


def evidence_pack_response(*, client: Client, generated_by: User) -> FileResponse:
    """The evidence pack of ``client`` as a download (also the client contacts' own, elevations/)."""
    now = timezone.now()
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (FileResponse closes it when sent)
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        digests = {
            "access-matrix.csv": _write_csv(archive, "access-matrix.csv",
                                            AccessMatrix(MatrixFilters(client=client.pk)).csv_rows()),
            "grant-history.csv": _write_csv(archive, "grant-history.csv", client_grant_history_rows(client=client)),
            "link-uses.csv": _write_csv(archive, "link-uses.csv", client_use_rows(client=client)),
            "root-credentials.csv": _write_csv(archive, "root-credentials.csv",
                                               client_root_posture_rows(client=client)),
        }
        report = audit_verify_chain()
        last_check = last_chain_check()
        chain = {
            "verified_at": timezone.now().isoformat(),
            "intact": report.intact,
            "events_checked": report.events_checked,
            "first_bad_sequence": report.first_bad_sequence,
            "problem": report.problem,
            "last_scheduled_check": None if last_check is None else {
                "checked_at": last_check.checked_at.isoformat(), "intact": last_check.intact,
                "events_checked": last_check.events_checked,
                "first_bad_sequence": last_check.first_bad_sequence, "problem": last_check.problem,
            },
        }
        chain_bytes = json.dumps(chain, indent=2).encode()
        archive.writestr("audit-chain.json", chain_bytes)
        digests["audit-chain.json"] = hashlib.sha256(chain_bytes).hexdigest()
        manifest = {
            "client": {"id": client.pk, "name": client.name, "slug": client.slug},
            "generated_at": now.isoformat(),
            "generated_by": generated_by.get_username(),
            "files": digests,
        }
        archive.writestr("manifest.json", json.dumps(manifest, indent=2))
    spool.seek(0)
    return FileResponse(spool, as_attachment=True, content_type="application/zip",
                        filename=f"switchyard-evidence-{client.slug}-{now:%Y%m%dT%H%MZ}.zip")
