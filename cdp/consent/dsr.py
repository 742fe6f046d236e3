"""Data-subject requests end to end: identify, verify, act, prove.

A compliance officer (or the API on their behalf) opens a request with any
identifier the person gave: an email, a phone number or a source record id
(``source:record``). The identifier is normalised and looked up through blind
indexes; it must resolve to exactly one profile (an identifier shared by two
profiles is refused, so one person never receives another's data). Every step
and every refusal is audited by the access layer.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cdp._exceptions import CDPError, Conflict, InputError, NotFound
from cdp.access import AccessContext, CustomerStore
from cdp.identity.normalize import normalize_email, normalize_phone
from cdp.settings import Settings


@dataclass
class RequestOutcome:
    request_id: str
    status: str
    profile_id: str | None
    result: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def identifier_kind(identifier: str) -> tuple[str, str]:
    """(blind-index kind, normalised value) for what a person told us."""
    text = identifier.strip()
    if "@" in text:
        email = normalize_email(text)
        if email is None:
            raise InputError("field 'identifier': not a valid email address")
        return "email", email.match_key
    if ":" in text and not text.startswith("+"):
        return "source_id", text
    phone = normalize_phone(text)
    if phone is None:
        raise InputError("field 'identifier': not an email, phone number or source:record id")
    return "phone", phone


def deadline_days(settings: Settings, regime: str) -> int:
    if regime == "GDPR":
        return settings.gdpr_deadline_days
    if regime == "CCPA":
        return settings.ccpa_deadline_days
    raise InputError(f"field 'regime': must be GDPR or CCPA, got {regime!r}")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def summarise(export: dict[str, Any]) -> str:
    sources = sorted({r["source"] for r in export["records"]})
    lines = [
        f"Data held on profile {export['profile_id']}",
        f"- {len(export['records'])} source record(s) from: {', '.join(sources) or 'none'}",
        f"- {len(export['events'])} event(s)",
        f"- {len(export['consents'])} consent decision(s)",
        f"- tags: {', '.join(sorted({t['tag'] for t in export['tags'] if not t['removed_at']})) or 'none'}",
        f"- segments: {', '.join(sorted({s['segment'] for s in export['segments'] if not s['exited_at']})) or 'none'}",
        f"- included in {len(export['exports'])} export(s)",
        f"- {len(export['access_log'])} recorded access(es) to this data",
    ]
    return "\n".join(lines) + "\n"


def scrub_export_files(settings: Settings, profile_id: str) -> int:
    """Remove a person's rows from every export file cdp wrote (they may still sit in the data dir)."""
    scrubbed = 0
    if not settings.exports_dir.is_dir():
        return 0
    for path in sorted(settings.exports_dir.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows or "profile_id" not in rows[0]:
            continue
        index = rows[0].index("profile_id")
        kept = [rows[0]] + [r for r in rows[1:] if len(r) <= index or r[index] != profile_id]
        if len(kept) != len(rows):
            with path.open("w", encoding="utf-8", newline="") as handle:
                csv.writer(handle).writerows(kept)
            scrubbed += 1
    return scrubbed


class DataSubjectRequests:
    def __init__(self, store: CustomerStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    @property
    def files_dir(self) -> Path:
        return self.settings.data_dir / "dsr"

    def _identify(self, ctx: AccessContext, request_id: str, identifier: str) -> str:
        kind, value = identifier_kind(identifier)
        profiles = self.store.find_profiles(ctx, kind=kind, value=value)
        if not profiles:
            raise NotFound(f"request {request_id}: no person found for that {kind}")
        if len(profiles) > 1:
            raise Conflict(
                f"request {request_id}: that {kind} matches {len(profiles)} profiles; ask for another identifier"
            )
        return profiles[0]

    def run(
        self, ctx: AccessContext, *, kind: str, identifier: str, regime: str = "GDPR", **options: Any
    ) -> RequestOutcome:
        """Open, verify, carry out and close one request; a refusal closes it as rejected."""
        request_id = self.store.open_request(
            ctx,
            kind=kind,
            regime=regime,
            deadline_days=deadline_days(self.settings, regime),
            detail={"options": sorted(options)},
        )
        try:
            profile_id = self._identify(ctx, request_id, identifier)
            self.store.advance_request(
                ctx, request_id, "verified", profile_id=profile_id, note="identifier resolved to one profile"
            )
            self.store.advance_request(ctx, request_id, "in_progress")
            outcome = self._carry_out(ctx, request_id, kind, profile_id, options)
        except CDPError as error:
            self.store.advance_request(ctx, request_id, "rejected", note=error.message)
            raise
        self.store.advance_request(ctx, request_id, "done", note=json.dumps(outcome.result, default=str)[:500])
        outcome.status = "done"
        return outcome

    def _carry_out(
        self, ctx: AccessContext, request_id: str, kind: str, profile_id: str, options: dict[str, Any]
    ) -> RequestOutcome:
        outcome = RequestOutcome(request_id, "in_progress", profile_id)
        if kind == "access":
            export = self.store.subject_export(ctx, profile_id)
            export["request_id"] = request_id
            export["generated_at"] = datetime.now(UTC).isoformat()
            data_file = self.files_dir / f"{request_id}.json"
            summary_file = self.files_dir / f"{request_id}.txt"
            _write_private(data_file, json.dumps(export, indent=2, ensure_ascii=False, default=str))
            _write_private(summary_file, summarise(export))
            outcome.files = [data_file, summary_file]
            outcome.result = {"records": len(export["records"]), "events": len(export["events"])}
        elif kind == "erasure":
            outcome.result = self.store.erase_subject(ctx, profile_id, request_id=request_id)
            outcome.result["export_files_scrubbed"] = scrub_export_files(self.settings, profile_id)
            outcome.result["access_files_deleted"] = self._delete_access_files(ctx, profile_id)
        elif kind == "rectification":
            corrections = options.get("corrections") or {}
            if not isinstance(corrections, dict) or not corrections:
                raise InputError(f"request {request_id}: rectification needs at least one field=value correction")
            outcome.result = {
                "record": self.store.rectify(ctx, profile_id, corrections, request_id=request_id),
                "fields": sorted(corrections),
            }
        elif kind == "restriction":
            self.store.set_profile_status(ctx, profile_id, "restricted")
            outcome.result = {"status": "restricted"}
        elif kind == "objection":
            purpose = str(options.get("purpose") or "")
            self.store.record_consent(
                ctx,
                profile_id,
                purpose=purpose,
                status="withdrawn",
                basis="consent",
                source="dsr:objection",
                evidence={"request": request_id},
            )
            outcome.result = {"purpose": purpose, "status": "withdrawn"}
        return outcome

    def _delete_access_files(self, ctx: AccessContext, profile_id: str) -> int:
        deleted = 0
        for request in self.store.requests(ctx):
            if request["profile_id"] == profile_id and request["kind"] == "access":
                for suffix in (".json", ".txt"):
                    path = self.files_dir / f"{request['id']}{suffix}"
                    if path.exists():
                        path.unlink()
                        deleted += 1
        return deleted

    def overdue(self, ctx: AccessContext, at: datetime | None = None) -> list[dict[str, Any]]:
        return self.store.requests(ctx, overdue_at=at or datetime.now(UTC))
