"""cdp.identity."""
