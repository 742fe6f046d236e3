"""Website events in the Segment tracking spec: identify, track, page, alias.

The same parsing serves two modes: the HTTP collection endpoint
(``cdp.api.collect``: ``/v1/identify`` … ``/v1/batch``) and a file mode that
reads the same calls from JSON lines. ``messageId`` is the idempotency key: it is
the record id in the one stream ``calls``, so the store's unique (source, stream,
record id) makes a re-sent call a no-op, and the record carries no separate
``message_id`` (which would cost a second unique key per record).
Direct identifiers in ``traits`` become identity fields (encrypted at rest);
event properties are kept only where classified in ``policies/fields.yaml``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from cdp._exceptions import RecordRejected
from cdp.connectors import _files
from cdp.connectors._parse import mapping, number, text, timestamp
from cdp.connectors.base import ConfigField, Connector, FieldSpec, ReadResult, SourceItem, StreamSpec
from cdp.model import ConsentSignal, EventData, IncomingRecord

CALL_TYPES = frozenset({"identify", "track", "page", "screen", "alias", "group"})
KNOWN_KEYS = frozenset(
    {
        "type",
        "messageId",
        "timestamp",
        "sentAt",
        "receivedAt",
        "originalTimestamp",
        "userId",
        "anonymousId",
        "context",
        "traits",
        "properties",
        "event",
        "name",
        "category",
        "previousId",
        "integrations",
        "groupId",
        "writeKey",
        "channel",
        "version",
        "_metadata",
        "options",
        "batch",
    }
)
# Event properties kept (behavioural, classified); anything else stays only in the encrypted payload.
KEPT_PROPERTIES = ("sku", "price", "quantity", "path", "list", "order_id", "currency", "category")
CONSENT_CATEGORIES = {
    "marketing": "marketing_email",
    "analytics": "analytics",
    "advertising": "advertising",
    "personalization": "personalisation",
    "personalisation": "personalisation",
}
MAX_CALL_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024

TRAIT_FIELDS = {
    "email": "email",
    "phone": "phone",
    "firstName": "given_name",
    "first_name": "given_name",
    "lastName": "family_name",
    "last_name": "family_name",
    "name": "full_name",
    "birthday": "date_of_birth",
    "gender": "gender",
    "loyaltyId": "loyalty_id",
}
ADDRESS_FIELDS = {"street": "street", "city": "city", "state": "state", "postalCode": "postcode", "country": "country"}

WEB_FIELDS = (
    FieldSpec("messageId", "string", "pseudonymous", required=True),
    FieldSpec("type", "string", "operational", required=True),
    FieldSpec("timestamp", "datetime", "behavioural"),
    FieldSpec("userId", "string", "direct_identifier"),
    FieldSpec("anonymousId", "string", "pseudonymous"),
    FieldSpec("previousId", "string", "pseudonymous"),
    FieldSpec("event", "string", "behavioural"),
    FieldSpec("name", "string", "behavioural"),
    FieldSpec("traits.email", "string", "direct_identifier"),
    FieldSpec("traits.phone", "string", "direct_identifier"),
    FieldSpec("traits.firstName", "string", "direct_identifier"),
    FieldSpec("traits.lastName", "string", "direct_identifier"),
    FieldSpec("traits.name", "string", "direct_identifier"),
    FieldSpec("traits.birthday", "string", "direct_identifier"),
    FieldSpec("traits.gender", "string", "quasi_identifier"),
    FieldSpec("traits.loyaltyId", "string", "direct_identifier"),
    FieldSpec("traits.address.street", "string", "direct_identifier"),
    FieldSpec("traits.address.city", "string", "quasi_identifier"),
    FieldSpec("traits.address.state", "string", "quasi_identifier"),
    FieldSpec("traits.address.postalCode", "string", "quasi_identifier"),
    FieldSpec("traits.address.country", "string", "quasi_identifier"),
    FieldSpec("properties.revenue", "number", "behavioural"),
    FieldSpec("properties.category", "string", "behavioural"),
    FieldSpec("context.ip", "string", "direct_identifier"),
    FieldSpec("context.consent", "object", "operational"),
)


def message_id(call: Mapping[str, Any]) -> str:
    """The call's messageId, or a content hash for clients that send none."""
    value = call.get("messageId")
    if isinstance(value, str) and value.strip():
        return value.strip()[:200]
    canonical = json.dumps(call, sort_keys=True, separators=(",", ":"), default=str)
    return "h_" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def _consents(context: Mapping[str, Any], *, gpc: bool, record: str) -> list[ConsentSignal]:
    signals: list[ConsentSignal] = []
    ip = context.get("ip") if isinstance(context.get("ip"), str) else None
    consent = context.get("consent")
    if isinstance(consent, dict):
        prefs = consent.get("categoryPreferences")
        if prefs is not None and not isinstance(prefs, dict):
            raise RecordRejected("must be an object", record=record, field="context.consent.categoryPreferences")
        for category, value in (prefs or {}).items():
            purpose = CONSENT_CATEGORIES.get(str(category).lower())
            if purpose is None or not isinstance(value, bool):
                continue
            signals.append(
                ConsentSignal(
                    purpose, "granted" if value else "denied", source="website", evidence={"request": record, "ip": ip}
                )
            )
    if gpc:
        signals.append(
            ConsentSignal(
                "advertising",
                "denied",
                source="website:sec-gpc",
                evidence={"request": record, "signal": "Sec-GPC: 1", "ip": ip},
            )
        )
    return signals


def call_to_record(
    call: Mapping[str, Any], *, source: str = "website", position: str = "", gpc: bool = False, strict_keys: bool = True
) -> IncomingRecord:
    """Validate one Segment call and build the record it carries."""
    record = message_id(call)
    unknown = sorted(k for k in call if k not in KNOWN_KEYS)
    if strict_keys and unknown:
        raise RecordRejected(f"unknown field {unknown[0]!r} in a Segment call", record=record, field=unknown[0])
    kind = call.get("type")
    if not isinstance(kind, str) or kind not in CALL_TYPES:
        raise RecordRejected(f"must be one of {sorted(CALL_TYPES)}", record=record, field="type")
    user_id = text(call.get("userId"), "userId", record=record, max_len=200)
    anonymous_id = text(call.get("anonymousId"), "anonymousId", record=record, max_len=200)
    if kind == "alias":
        anonymous_id = text(call.get("previousId"), "previousId", record=record, required=True, max_len=200)
    if not user_id and not anonymous_id:
        raise RecordRejected("userId or anonymousId is required", record=record, field="userId")
    when = timestamp(
        call.get("timestamp") or call.get("originalTimestamp") or call.get("sentAt") or call.get("receivedAt"),
        "timestamp",
        record=record,
    )
    assert when is not None
    context = mapping(call.get("context"), "context", record=record)
    identity: dict[str, str] = {}
    if user_id:
        identity["user_id"] = user_id
    events: list[EventData] = []
    if kind == "identify":
        traits = mapping(call.get("traits") or context.get("traits"), "traits", record=record)
        for key, target in TRAIT_FIELDS.items():
            raw = traits.get(key)
            value = text(raw, f"traits.{key}", record=record) if raw is not None else None  # absent: skip the call
            if value:
                identity.setdefault(target, value)
        address = mapping(traits.get("address"), "traits.address", record=record)
        for key, target in ADDRESS_FIELDS.items():
            raw = address.get(key)
            value = text(raw, f"traits.address.{key}", record=record) if raw is not None else None
            if value:
                identity[target] = value
        events.append(EventData("identify", when, "Identify", channel="web"))
    elif kind in ("track", "page", "screen"):
        props = mapping(call.get("properties"), "properties", record=record)
        name = text(
            call.get("event") if kind == "track" else call.get("name"),
            "event" if kind == "track" else "name",
            record=record,
            required=kind == "track",
            max_len=200,
        )
        revenue = number(
            props.get("revenue", props.get("total")), "properties.revenue", record=record, low=-1e9, high=1e9
        )
        currency = text(props.get("currency"), "properties.currency", record=record, max_len=3)
        category = text(props.get("category"), "properties.category", record=record, max_len=100)
        kept = {
            k: props[k]
            for k in KEPT_PROPERTIES
            if k in props and isinstance(props[k], str | int | float) and not isinstance(props[k], bool)
        }
        products = props.get("products")
        if isinstance(products, list):
            kept["products_count"] = len(products)
        events.append(
            EventData(
                kind,
                when,
                name or ("Page Viewed" if kind == "page" else None),
                revenue=revenue,
                currency=currency.upper() if currency else None,
                channel="web",
                category=category,
                properties=kept,
            )
        )
    elif kind == "alias":
        events.append(EventData("alias", when, "Alias", channel="web"))
    consents = _consents(context, gpc=gpc, record=record)
    locale = context.get("locale")
    region = (
        locale.replace("_", "-").split("-")[-1].upper()
        if isinstance(locale, str) and "-" in locale.replace("_", "-")
        else None
    )
    return IncomingRecord(
        source=source,
        stream="calls",
        source_record_id=record,
        occurred_at=when,
        payload=dict(call),
        identity=identity,
        anonymous_id=anonymous_id,
        events=events,
        consents=consents,
        position=position or record,
        region_hint=region if region and len(region) == 2 and region.isalpha() else None,
    )


class WebsiteConnector(Connector):
    """Segment-spec website events from JSON-lines files (the HTTP endpoint shares the parsing)."""

    name: ClassVar[str] = "website"
    description: ClassVar[str] = "Website events in the Segment tracking spec (identify, track, page, alias, batch)."
    config_schema: ClassVar[tuple[ConfigField, ...]] = (
        ConfigField("path", "path", description="JSON-lines file of Segment calls (file mode)"),
        ConfigField("write_keys", "array", secret=True, default=None, description="accepted write keys (HTTP mode)"),
        ConfigField(
            "strict_keys", "boolean", default=True, description="quarantine calls with unknown top-level fields"
        ),
    )
    streams: ClassVar[tuple[StreamSpec, ...]] = (StreamSpec("calls", ("messageId",), "timestamp", WEB_FIELDS),)

    def read(self, state: Mapping[str, Any], result: ReadResult) -> Iterator[SourceItem]:
        path = _files.check_file(str(self.config.get("path") or ""))
        for item in _files.read_jsonl(path, "calls", state, result):
            if item.data is not None:
                encoded = len(item.raw.encode("utf-8"))
                if encoded > MAX_CALL_BYTES:
                    yield SourceItem(
                        item.stream,
                        item.position,
                        item.raw,
                        error=f"call is {encoded} bytes, over the 32 KB limit",
                        error_field="(size)",
                    )
                    continue
                if item.data.get("type") == "batch" or isinstance(item.data.get("batch"), list):
                    yield from self._explode_batch(item)
                    continue
            yield item

    def _explode_batch(self, item: SourceItem) -> Iterator[SourceItem]:
        calls = item.data.get("batch")
        if not isinstance(calls, list):
            yield SourceItem(item.stream, item.position, item.raw, error="batch must be a list", error_field="batch")
            return
        for index, call in enumerate(calls):
            position = f"{item.position}#{index}"
            raw = json.dumps(call, ensure_ascii=False)
            if isinstance(call, dict):
                yield SourceItem(item.stream, position, raw, data=call)
            else:
                yield SourceItem(
                    item.stream, position, raw, error="batch item must be an object", error_field=f"batch[{index}]"
                )

    def to_record(self, item: SourceItem) -> list[IncomingRecord]:
        return [
            call_to_record(item.data, position=item.position, strict_keys=bool(self.config.get("strict_keys", True)))
        ]
