"""cdp.demo."""
