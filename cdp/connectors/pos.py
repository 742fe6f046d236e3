"""Point-of-sale transactions from CSV or JSON lines.

One row is one till transaction: who (name, phone, email, loyalty id, often
missing for walk-ins), where (store), when, what (line items) and how much.
Each row becomes one record carrying the customer's identifiers and one
``Order Completed`` event on the ``store`` channel.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from cdp._exceptions import RecordRejected
from cdp.connectors._parse import json_loads, number, text, timestamp
from cdp.connectors._tabular import MappedFileConnector
from cdp.connectors.base import ConfigField, FieldSpec, SourceItem, StreamSpec
from cdp.model import ConsentSignal, EventData, IncomingRecord

POS_COLUMNS = (
    "transaction_id",
    "store_id",
    "occurred_at",
    "customer_name",
    "customer_phone",
    "customer_email",
    "loyalty_id",
    "line_items",
    "amount",
    "currency",
    "city",
    "state",
    "postcode",
    "country",
)
POS_FIELDS = (
    FieldSpec("transaction_id", "string", "pseudonymous", required=True),
    FieldSpec("store_id", "string", "behavioural"),
    FieldSpec("occurred_at", "datetime", "behavioural", required=True),
    FieldSpec("customer_name", "string", "direct_identifier"),
    FieldSpec("customer_phone", "string", "direct_identifier"),
    FieldSpec("customer_email", "string", "direct_identifier"),
    FieldSpec("loyalty_id", "string", "direct_identifier"),
    FieldSpec("line_items", "array", "behavioural"),
    FieldSpec("amount", "number", "behavioural", required=True),
    FieldSpec("currency", "string", "behavioural"),
    FieldSpec("city", "string", "quasi_identifier"),
    FieldSpec("state", "string", "quasi_identifier"),
    FieldSpec("postcode", "string", "quasi_identifier"),
    FieldSpec("country", "string", "quasi_identifier"),
)


def parse_line_items(value: Any, *, record: str) -> list[dict[str, Any]]:
    if value is None or value == "":
        return []
    items = value
    if isinstance(value, str):
        try:
            items = json_loads(value)
        except json.JSONDecodeError:
            raise RecordRejected("is not a JSON array", record=record, field="line_items") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise RecordRejected("must be a list of objects", record=record, field="line_items")
    return items


class PosConnector(MappedFileConnector):
    name: ClassVar[str] = "pos"
    description: ClassVar[str] = "Point-of-sale transactions (CSV or JSON lines) with a column mapping."
    config_schema: ClassVar[tuple[ConfigField, ...]] = (
        ConfigField("path", "path", required=True, description="the transactions file"),
        ConfigField("source", "string", description="source name to store records under (default: pos)"),
        ConfigField("format", "string", description="csv or jsonl (default: from the file extension)"),
        ConfigField("delimiter", "string", default=",", description="CSV delimiter"),
        ConfigField("columns", "object", default=None, description="canonical name -> column name in the file"),
        ConfigField("ignore_columns", "array", default=None, description="columns to ignore"),
        ConfigField("default_currency", "string", default="USD"),
        ConfigField(
            "default_region", "string", description="country (ISO alpha-2) of the stores, for national phone numbers"
        ),
        ConfigField(
            "region_from_store_id",
            "boolean",
            default=False,
            description="store ids start with the store's ISO country code",
        ),
    )
    streams: ClassVar[tuple[StreamSpec, ...]] = (
        StreamSpec("transactions", ("transaction_id",), "occurred_at", POS_FIELDS),
    )
    canonical_columns = POS_COLUMNS
    stream_name = "transactions"

    def to_record(self, item: SourceItem) -> list[IncomingRecord]:
        row, record = self.canonical(item, record_field="transaction_id")
        transaction_id = text(row.get("transaction_id"), "transaction_id", record=record, required=True, max_len=200)
        assert transaction_id is not None
        when = timestamp(row.get("occurred_at"), "occurred_at", record=record)
        amount = number(row.get("amount"), "amount", record=record, required=True, low=-1e9, high=1e9)
        currency = (
            text(row.get("currency"), "currency", record=record, max_len=3)
            or str(self.config.get("default_currency") or "USD")
        ).upper()
        items = parse_line_items(row.get("line_items"), record=record)
        store_id = text(row.get("store_id"), "store_id", record=record, max_len=100)
        categories = [str(i.get("category")) for i in items if i.get("category")]
        identity: dict[str, str] = {}
        for source_field, target in (
            ("customer_name", "full_name"),
            ("customer_phone", "phone"),
            ("customer_email", "email"),
            ("loyalty_id", "loyalty_id"),
            ("city", "city"),
            ("state", "state"),
            ("postcode", "postcode"),
            ("country", "country"),
        ):
            value = text(row.get(source_field), source_field, record=record, max_len=300)
            if value:
                identity[target] = value
        assert when is not None
        event = EventData(
            "transaction",
            when,
            "Order Completed",
            revenue=amount,
            currency=currency,
            channel="store",
            store_id=store_id,
            category=max(set(categories), key=categories.count) if categories else None,
            properties={
                "items": sum(
                    int(i.get("quantity") or 1) for i in items if isinstance(i.get("quantity", 1), int | float)
                )
            },
        )
        consents = []
        if identity.get("loyalty_id"):
            # A loyalty card is a contract for personalised offers; the sign-up is recorded in the ledger.
            consents.append(
                ConsentSignal(
                    "personalisation",
                    "granted",
                    basis="contract",
                    source=f"{self.source_name}:loyalty",
                    evidence={"transaction": transaction_id},
                )
            )
        region = self.config.get("default_region")
        if self.config.get("region_from_store_id") and store_id and store_id[:2].isalpha():
            region = store_id[:2].upper()
        return [
            IncomingRecord(
                source=self.source_name,
                stream=self.stream_name,
                source_record_id=transaction_id,
                occurred_at=when,
                payload=dict(item.data),
                identity=identity,
                events=[event],
                position=item.position,
                consents=consents,
                region_hint=str(region) if region else None,
            )
        ]
