"""The Shopify orders connector passes cdp's connector conformance kit (samples in ``samples/``)."""

from pathlib import Path

from cdp_shopify_orders.connector import ShopifyOrdersConnector

from cdp.connectors.testing import ConnectorConformance

SAMPLES = Path(__file__).parent / "samples"


class TestShopifyOrders(ConnectorConformance, connector_class=ShopifyOrdersConnector, samples_dir=SAMPLES): ...
