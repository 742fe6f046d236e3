"""The records that flow from connectors into the access layer.

Connectors read raw input and build :class:`IncomingRecord` values; the
ingestion runner normalises them and hands them to the access layer, which
encrypts direct identifiers and stores them. These types carry plaintext, so
they live only in memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

IDENTITY_FIELDS = (
    "email",
    "phone",
    "given_name",
    "family_name",
    "date_of_birth",
    "street",
    "loyalty_id",
    "user_id",
)
CLEAR_FIELDS = ("postcode", "city", "state", "country", "gender")
CONSENT_STATUSES = frozenset({"granted", "denied", "withdrawn"})
LAWFUL_BASES = frozenset({"consent", "contract", "legitimate_interest", "legal_obligation"})


@dataclass(frozen=True)
class EventData:
    event_type: str  # track | page | identify | transaction | survey | alias
    occurred_at: datetime
    event_name: str | None = None
    revenue: float | None = None
    currency: str | None = None
    channel: str | None = None  # web | store | survey
    store_id: str | None = None
    category: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConsentSignal:
    purpose: str
    status: str  # granted | denied | withdrawn
    basis: str = "consent"
    source: str = ""
    notice_version: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class IncomingRecord:
    """One source record, validated and normalised, not yet stored."""

    source: str
    stream: str
    source_record_id: str
    occurred_at: datetime | None
    payload: dict[str, Any]
    identity: dict[str, str] = field(default_factory=dict)  # normalised values of IDENTITY_FIELDS and CLEAR_FIELDS
    match_keys: dict[str, str] = field(default_factory=dict)  # kind -> normalised match key (email, phone, ...)
    anonymous_id: str | None = None
    events: list[EventData] = field(default_factory=list)
    consents: list[ConsentSignal] = field(default_factory=list)
    position: str = ""
    # A message id other than source_record_id (sources whose messages are re-sent under other record
    # ids); a re-sent message id is then a no-op across the source's streams. None: the record id is the
    # message id, unique per (source, stream).
    message_id: str | None = None
    region_hint: str | None = None  # ISO country to read national phone numbers with, when the record has no country

    @property
    def kind(self) -> str:
        return "identity" if any(self.identity.get(f) for f in IDENTITY_FIELDS) else "event"

    @property
    def idempotency_key(self) -> str:
        base = self.message_id or f"{self.stream}\x1f{self.source_record_id}"
        return hashlib.sha256(f"{self.source}\x1f{base}".encode()).hexdigest()


@dataclass(frozen=True)
class IngestOutcome:
    accepted: int
    duplicates: int
    record_ids: tuple[str, ...] = ()
    suppressed: int = 0  # records of erased people, blocked by their suppression entries


def strip_sensitive(payload: Any, keys: frozenset[str], depth: int = 0) -> Any:
    """The payload without special-category keys (any nesting level), as policies require."""
    if not keys or depth > 20:
        return payload
    if isinstance(payload, dict):
        return {k: strip_sensitive(v, keys, depth + 1) for k, v in payload.items() if str(k).lower() not in keys}
    if isinstance(payload, list):
        return [strip_sensitive(v, keys, depth + 1) for v in payload]
    return payload
