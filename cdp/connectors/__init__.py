"""cdp.connectors."""
