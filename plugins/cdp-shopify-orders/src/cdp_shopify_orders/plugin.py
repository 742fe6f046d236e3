"""The plugin module cdp loads through the ``cdp`` entry point: it registers the connector."""

from __future__ import annotations

from typing import Any

from cdp.hookspecs import PluginContext, hookimpl
from cdp_shopify_orders.connector import ShopifyOrdersConnector


@hookimpl
def cdp_connectors(context: PluginContext) -> list[Any]:
    return [ShopifyOrdersConnector]
