"""cdp-shopify-orders: a cdp connector for Shopify's orders export, shipped as its own package."""

from __future__ import annotations

from cdp_shopify_orders.connector import ShopifyOrdersConnector

__all__ = ["ShopifyOrdersConnector"]
__version__ = "0.1.0"
