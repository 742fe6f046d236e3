"""What is specific to Shopify exports: rows grouped into orders, statuses, consent, dropped columns."""

from __future__ import annotations

import shutil
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from cdp_shopify_orders.connector import ShopifyOrdersConnector

from cdp._exceptions import RecordRejected
from cdp.connectors.base import ReadResult, SourceItem
from cdp.hookspecs import PluginContext
from cdp.plugins import build_plugin_manager
from cdp.settings import Settings

SAMPLES = Path(__file__).parent / "samples"
INSTALLED = any(ep.value == "cdp_shopify_orders.plugin" for ep in entry_points(group="cdp"))


def read(path: Path, state: dict[str, object] | None = None) -> tuple[list[SourceItem], dict[str, object]]:
    result = ReadResult(state=dict(state or {}))
    items = list(ShopifyOrdersConnector({"path": str(path)}).read(state or {}, result))
    return items, result.state


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return Path(shutil.copyfile(SAMPLES / "sample.csv", tmp_path / "orders_export.csv"))


def test_line_item_rows_are_grouped_into_one_order(sample: Path) -> None:
    items, _ = read(sample)
    assert [i.position for i in items] == ["orders_export.csv:2-3", "orders_export.csv:4", "orders_export.csv:5"]
    connector = ShopifyOrdersConnector({"path": str(sample)})
    (first,) = connector.to_record(items[0])
    assert first.source_record_id == "#1001"
    assert [line["name"] for line in first.payload["line_items"]] == ["Earl Grey Tea 100g", "Teapot"]
    (event,) = first.events
    assert (event.event_name, event.revenue, event.currency, event.properties["items"]) == (
        "Order Completed",
        59.4,
        "USD",
        3,
    )
    assert first.identity["email"] == "ada@example.com" and first.identity["country"] == "US"
    assert [(c.purpose, c.status) for c in first.consents] == [("marketing_email", "granted")]


def test_status_decides_the_event(sample: Path) -> None:
    items, _ = read(sample)
    connector = ShopifyOrdersConnector({"path": str(sample)})
    names = [connector.to_record(i)[0].events[0].event_name for i in items]
    assert names == ["Order Completed", "Order Placed", "Order Refunded"]
    assert [(c.purpose, c.status) for c in connector.to_record(items[1])[0].consents] == [("marketing_email", "denied")]


def test_undeclared_columns_are_dropped_while_reading(sample: Path) -> None:
    items, _ = read(sample)
    for item in items:
        for row in item.data["rows"]:
            assert not {"Shipping Name", "Notes", "Id"} & set(row)
    record = ShopifyOrdersConnector({"path": str(sample)}).to_record(items[0])[0]
    assert "Leave at the door" not in repr(record.payload)


def test_an_order_split_by_the_end_of_a_read_is_not_cut(sample: Path) -> None:
    """The saved state after each order ends on its last row, so a resumed read starts at the next order."""
    connector = ShopifyOrdersConnector({"path": str(sample)})
    result = ReadResult()
    reader = connector.read({}, result)
    first = next(reader)
    assert first.position.endswith(":2-3")
    resumed, _ = read(sample, dict(result.state))
    assert [i.position for i in resumed] == ["orders_export.csv:4", "orders_export.csv:5"]


def test_bad_rows_are_rejected_naming_the_field(tmp_path: Path) -> None:
    path = Path(shutil.copyfile(SAMPLES / "bad.csv", tmp_path / "bad.csv"))
    items, _ = read(path)
    connector = ShopifyOrdersConnector({"path": str(path)})
    outcomes: list[str] = []
    for item in items:
        if item.error is not None:
            outcomes.append("unparseable")
            continue
        try:
            connector.to_record(item)
            outcomes.append("ok")
        except RecordRejected as exc:
            outcomes.append(exc.field)
    assert outcomes == ["ok", "Total", "Created at", "unparseable", "Financial Status"]


@pytest.mark.skipif(not INSTALLED, reason="cdp-shopify-orders is not pip-installed (no entry point)")
def test_the_plugin_is_registered_through_its_entry_point() -> None:
    pm = build_plugin_manager()
    found = [cls for group in pm.hook.cdp_connectors(context=PluginContext(settings=Settings())) for cls in group]
    assert ShopifyOrdersConnector in found
