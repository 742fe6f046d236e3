"""Shopify orders from the admin's "Export orders" CSV.

Shopify writes one row per line item and repeats the order's ``Name`` on each
of them; the order-level columns (email, totals, billing address, status) are
filled on the first row only. This connector groups consecutive rows by
``Name`` into one order, which becomes one record: the buyer's identifiers,
an order event (``Order Completed`` once paid) and, from ``Accepts
Marketing``, a consent signal for marketing email.

Only the columns declared in the stream schema are kept; everything else in
the export (shipping address, notes, payment references, tags ...) is dropped
while reading, so unclassified personal data is never stored, not even in
quarantine.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from cdp._exceptions import RecordRejected
from cdp.connectors import _files
from cdp.connectors._parse import number, text, timestamp
from cdp.connectors.base import ConfigField, Connector, FieldSpec, ReadResult, SourceItem, StreamSpec
from cdp.model import ConsentSignal, EventData, IncomingRecord

STREAM = "orders"
ORDER_FIELDS = (
    FieldSpec("Name", "string", "pseudonymous", required=True, description="order name, e.g. #1001"),
    FieldSpec("Email", "string", "direct_identifier"),
    FieldSpec("Financial Status", "string", "behavioural"),
    FieldSpec("Paid at", "datetime", "behavioural"),
    FieldSpec("Accepts Marketing", "string", "operational", description="yes / no: marketing email consent"),
    FieldSpec("Currency", "string", "behavioural"),
    FieldSpec("Subtotal", "number", "behavioural"),
    FieldSpec("Total", "number", "behavioural", required=True),
    FieldSpec("Created at", "datetime", "behavioural", required=True),
    FieldSpec("Billing Name", "string", "direct_identifier"),
    FieldSpec("Billing Phone", "string", "direct_identifier"),
    FieldSpec("Billing City", "string", "quasi_identifier"),
    FieldSpec("Billing Zip", "string", "quasi_identifier"),
    FieldSpec("Billing Province", "string", "quasi_identifier"),
    FieldSpec("Billing Country", "string", "quasi_identifier"),
)
LINE_FIELDS = (
    FieldSpec("Lineitem name", "string", "behavioural"),
    FieldSpec("Lineitem quantity", "integer", "behavioural"),
    FieldSpec("Lineitem price", "number", "behavioural"),
    FieldSpec("Lineitem sku", "string", "behavioural"),
)
KEPT_COLUMNS = frozenset(f.name for f in (*ORDER_FIELDS, *LINE_FIELDS))
IDENTITY_COLUMNS = (
    ("Email", "email"),
    ("Billing Name", "full_name"),
    ("Billing Phone", "phone"),
    ("Billing City", "city"),
    ("Billing Zip", "postcode"),
    ("Billing Province", "state"),
    ("Billing Country", "country"),
)
EVENT_FOR_STATUS = {
    "paid": "Order Completed",
    "partially_paid": "Order Completed",
    "partially_refunded": "Order Completed",
    "authorized": "Order Completed",
    "pending": "Order Placed",
    "refunded": "Order Refunded",
    "voided": "Order Cancelled",
    "expired": "Order Cancelled",
}
YES = frozenset({"yes", "true", "1"})
NO = frozenset({"no", "false", "0"})
_CURRENCY = re.compile(r"[A-Z]{3}")


def _row_key(item: SourceItem) -> str:
    """The order a row belongs to; a row without a ``Name`` is an order of its own."""
    name = str(item.data.get("Name") or "").strip()
    return name or f"\x00{item.position}"


def group_rows(rows: list[SourceItem]) -> SourceItem:
    """One order item from its consecutive rows, keeping only the declared columns."""
    first, last = rows[0], rows[-1]
    position = first.position
    if len(rows) > 1:
        position = f"{first.position}-{last.position.rsplit(':', 1)[-1]}"
    kept = [{k: v for k, v in row.data.items() if k in KEPT_COLUMNS} for row in rows]
    return SourceItem(first.stream, position, "\n".join(row.raw for row in rows), data={"rows": kept})


def _line_item(row: Mapping[str, Any], *, record: str) -> dict[str, Any] | None:
    name = text(row.get("Lineitem name"), "Lineitem name", record=record, max_len=500)
    quantity = number(row.get("Lineitem quantity"), "Lineitem quantity", record=record, low=0, high=1_000_000)
    price = number(row.get("Lineitem price"), "Lineitem price", record=record, low=-1e9, high=1e9)
    sku = text(row.get("Lineitem sku"), "Lineitem sku", record=record, max_len=200)
    if name is None and quantity is None and price is None and sku is None:
        return None
    if quantity is not None and quantity != int(quantity):
        raise RecordRejected("must be a whole number", record=record, field="Lineitem quantity")
    return {"name": name, "quantity": int(quantity) if quantity is not None else 1, "price": price, "sku": sku}


class ShopifyOrdersConnector(Connector):
    """Orders from a Shopify orders export (CSV), one record per order."""

    name: ClassVar[str] = "shopify_orders"
    description: ClassVar[str] = (
        "Shopify orders export (CSV, one row per line item), grouped into one record per order."
    )
    config_schema: ClassVar[tuple[ConfigField, ...]] = (
        ConfigField("path", "path", required=True, description="the orders export CSV"),
        ConfigField("source", "string", description="source name to store records under (default: shopify_orders)"),
        ConfigField("delimiter", "string", default=",", description="CSV delimiter"),
        ConfigField("channel", "string", default="web", description="channel of the order events"),
    )
    streams: ClassVar[tuple[StreamSpec, ...]] = (
        StreamSpec(STREAM, ("Name",), "Created at", (*ORDER_FIELDS, *LINE_FIELDS)),
    )

    def read(self, state: Mapping[str, Any], result: ReadResult) -> Iterator[SourceItem]:
        """Yield one item per order.

        An order is yielded once the first row of the next order (or the end
        of the file) is seen. At that moment the reader's saved offset still
        ends at the order's last row, so a run interrupted between orders
        resumes exactly at the next one.
        """
        path = _files.check_file(str(self.config.get("path") or ""))
        delimiter = str(self.config.get("delimiter") or ",")
        pending: list[SourceItem] = []
        for item in _files.read_csv(path, STREAM, state, result, delimiter=delimiter):
            if item.data is None:  # unparseable row: close the open order, then pass the error on
                if pending:
                    yield group_rows(pending)
                    pending = []
                yield item
                continue
            if pending and _row_key(item) != _row_key(pending[0]):
                yield group_rows(pending)
                pending = []
            pending.append(item)
        if pending:
            yield group_rows(pending)

    def to_record(self, item: SourceItem) -> list[IncomingRecord]:
        rows = item.data.get("rows") if isinstance(item.data, dict) else None
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise RecordRejected("is not a Shopify order (expected a list of rows)", record=item.position, field="rows")
        head: dict[str, Any] = rows[0]
        order = text(head.get("Name"), "Name", record=item.position, required=True, max_len=100)
        assert order is not None
        if not str(head.get("Created at") or "").strip() and not str(head.get("Total") or "").strip():
            raise RecordRejected(
                "only line-item rows were found; the order's first row is missing", record=order, field="Created at"
            )
        created = timestamp(head.get("Created at"), "Created at", record=order)
        assert created is not None
        paid_at = timestamp(head.get("Paid at"), "Paid at", record=order, required=False)
        total = number(head.get("Total"), "Total", record=order, required=True, low=0, high=1e9)
        number(head.get("Subtotal"), "Subtotal", record=order, low=0, high=1e9)
        currency = (text(head.get("Currency"), "Currency", record=order, max_len=3) or "").upper() or None
        if currency is not None and not _CURRENCY.fullmatch(currency):
            raise RecordRejected("must be a three-letter ISO 4217 code", record=order, field="Currency")
        status = (text(head.get("Financial Status"), "Financial Status", record=order, max_len=40) or "").lower()
        if status and status not in EVENT_FOR_STATUS:
            raise RecordRejected(f"must be one of {sorted(EVENT_FOR_STATUS)}", record=order, field="Financial Status")
        event_name = EVENT_FOR_STATUS[status] if status else ("Order Completed" if paid_at else "Order Placed")
        line_items = [line for line in (_line_item(row, record=order) for row in rows) if line is not None]
        identity: dict[str, str] = {}
        for column, target in IDENTITY_COLUMNS:
            value = text(head.get(column), column, record=order, max_len=300)
            if value:
                identity[target] = value
        consents: list[ConsentSignal] = []
        accepts = (text(head.get("Accepts Marketing"), "Accepts Marketing", record=order, max_len=10) or "").lower()
        if accepts in YES or accepts in NO:
            consents.append(
                ConsentSignal(
                    "marketing_email",
                    "granted" if accepts in YES else "denied",
                    source=self.source_name,
                    evidence={"order": order, "column": "Accepts Marketing"},
                )
            )
        elif accepts:
            raise RecordRejected("must be yes or no", record=order, field="Accepts Marketing")
        event = EventData(
            "transaction",
            created,
            event_name,
            revenue=total,
            currency=currency,
            channel=str(self.config.get("channel") or "web"),
            properties={"items": sum(int(line["quantity"]) for line in line_items), "order_id": order},
        )
        order_columns = {k: v for k, v in head.items() if not k.startswith("Lineitem") and v not in (None, "")}
        return [
            IncomingRecord(
                source=self.source_name,
                stream=STREAM,
                source_record_id=order,
                occurred_at=created,
                payload={"order": order_columns, "line_items": line_items},
                identity=identity,
                events=[event],
                consents=consents,
                position=item.position,
            )
        ]
